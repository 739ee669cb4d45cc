package console

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestOptions(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string // a substring of the error; "" for a valid set
	}{
		{nil, ""},
		{[]string{"--console-bind-address=127.0.0.1:8095", "--console-trust-authorization-header"}, ""},
		{[]string{"--console-bind-address=0"}, "the console serves nothing else"},
		{[]string{"--console-bind-address="}, "--console-bind-address is empty"},
		{[]string{"--console-session-ttl=0s"}, "--console-session-ttl must be positive"},
		{[]string{"--console-trusted-proxies=10.0.0.0/8,192.0.2.7"}, ""},
		{[]string{"--console-trusted-proxies=10.0.0.0/8,ingress"}, `--console-trusted-proxies: "ingress" is neither a CIDR nor an address`},
	} {
		o := &Options{}
		fs := pflag.NewFlagSet("console", pflag.ContinueOnError)
		o.AddFlags(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		err := o.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%v: %v, want %q", tt.args, err, tt.want)
		}
	}
}
