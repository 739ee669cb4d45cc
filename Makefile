# Keywarden. `make help` lists the targets.

# Tool versions, pinned. Each tool is installed into bin/ by `go install`.
CONTROLLER_GEN_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
PROMTOOL_VERSION ?= v0.316.0
HELM_VERSION ?= v3.22.0
CYCLONEDX_GOMOD_VERSION ?= v1.10.0
COSIGN_VERSION ?= v2.6.5
CRD_REF_DOCS_VERSION ?= v0.3.0

ROOT := $(abspath .)
BIN := $(ROOT)/bin
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
GOLANGCI_LINT := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
PROMTOOL := $(BIN)/promtool-$(PROMTOOL_VERSION)
HELM := $(BIN)/helm-$(HELM_VERSION)
CYCLONEDX_GOMOD := $(BIN)/cyclonedx-gomod-$(CYCLONEDX_GOMOD_VERSION)
COSIGN := $(BIN)/cosign-$(COSIGN_VERSION)
CRD_REF_DOCS := $(BIN)/crd-ref-docs-$(CRD_REF_DOCS_VERSION)
IMG ?= keywarden:dev

# How much `make test` fuzzes the key parser and the HTTP handler: counts of
# inputs, not durations. A duration makes Go's fuzzing coordinator race its
# own deadline, and on a loaded machine the run fails with "context
# deadline exceeded" and no failing input. Each is about 10 s here.
FUZZ_PARSE ?= 400000x
FUZZ_HANDLER ?= 30000x

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-14s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRDs, the webhook configuration and each component's RBAC in config/.
	$(CONTROLLER_GEN) rbac:roleName=keywarden-manager crd webhook paths="./api/...;./controllers/...;./internal/app/controller/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac output:webhook:artifacts:config=config/webhook
	$(CONTROLLER_GEN) rbac:roleName=keywarden-verifier paths="./internal/app/verifier/..." output:rbac:artifacts:config=config/rbac/verifier

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate the DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: api-docs
api-docs: $(CRD_REF_DOCS) ## Generate the API reference docs/api.md from the types in api/.
	$(CRD_REF_DOCS) --source-path api/v1alpha1 --config hack/api-docs/config.yaml --renderer markdown --output-path docs/api.md --log-level ERROR

.PHONY: chart
chart: controlplane ## Regenerate the Helm chart's templates and CRDs (charts/keywarden) from config/.
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" go run ./hack/chart

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet -tags e2e,bench ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint.
	$(GOLANGCI_LINT) run --build-tags e2e,bench ./...

.PHONY: verify-generated
verify-generated: $(CONTROLLER_GEN) $(CRD_REF_DOCS) ## Fail when regenerating the CRDs, RBAC, deepcopy code or API reference changes a file.
	hack/verify-generated.sh

.PHONY: controlplane
controlplane: ## Build etcd, kube-apiserver and kubectl from the Go module proxy into bin/k8s/.
	hack/controlplane.sh >/dev/null

.PHONY: test
test: verify-generated vet lint controlplane $(PROMTOOL) $(HELM) ## Verify generated files, lint, run the unit and integration tests and short fuzz runs.
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" PROMTOOL=$(PROMTOOL) HELM=$(HELM) PROMETHEUS_OPERATOR_CRDS="$$(hack/monitoring-crds.sh)" go test ./... -count=1
	go test ./internal/keys -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZ_PARSE)
	go test ./pkg/verify -run '^$$' -fuzz '^FuzzHandler$$' -fuzztime $(FUZZ_HANDLER)

.PHONY: test-e2e
test-e2e: build controlplane $(HELM) $(CYCLONEDX_GOMOD) $(COSIGN) ## Run the end-to-end scenarios: the components as processes, kubectl, HTTP, a release.
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" PREVIOUS_RELEASE_DIR="$$(hack/previous.sh)" HELM=$(HELM) CYCLONEDX_GOMOD=$(CYCLONEDX_GOMOD) COSIGN=$(COSIGN) KEYWARDEN_BIN=$(BIN)/keywarden PLUGIN_BIN=$(BIN)/kubectl-keywarden CHROMIUM="$$(hack/chromium.sh)" NGINX="$$(hack/nginx.sh)" go test -tags e2e ./test/e2e -count=1 -v -timeout 25m -run 'TestE2E|TestDevLoop'

SOAK_MINUTES ?= 10
.PHONY: soak
soak: build controlplane ## Run the chaos soak for SOAK_MINUTES (10) and write its table to docs/reliability.md; make test-e2e runs two minutes of it.
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" PREVIOUS_RELEASE_DIR="$$(hack/previous.sh)" KEYWARDEN_BIN=$(BIN)/keywarden PLUGIN_BIN=$(BIN)/kubectl-keywarden SOAK_MINUTES=$(SOAK_MINUTES) SOAK_REPORT=$(CURDIR)/docs/reliability.md go test -tags e2e ./test/e2e -count=1 -v -timeout $$(( $(SOAK_MINUTES) * 2 + 20 ))m -run 'TestE2E/chaos_soak'

.PHONY: bench
bench: build controlplane ## Run the benchmarks (docs/benchmarks.md); each prints its ratio against a baseline measured in the same run.
	KEYWARDEN_BIN=$(BIN)/keywarden hack/bench.sh

.PHONY: dev
dev: build controlplane ## Run Keywarden against a local control plane with the samples applied (Ctrl-C stops it).
	go build -o $(BIN)/dev ./hack/dev
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" exec $(BIN)/dev --keywarden $(BIN)/keywarden $(DEV_FLAGS)

##@ Build

.PHONY: build
build: ## Build Keywarden (every component: keywarden controller|verifier|console) into bin/keywarden and the kubectl plugin into bin/kubectl-keywarden.
	go build -o $(BIN)/keywarden ./cmd/keywarden
	go build -o $(BIN)/kubectl-keywarden ./cmd/kubectl-keywarden

RELEASE_URL ?= https://github.com/keywarden/keywarden/releases/download
HOMEPAGE ?= https://github.com/keywarden/keywarden
PUBLIC_KEY ?= cosign.pub

.PHONY: release
release: controlplane $(HELM) $(CYCLONEDX_GOMOD) ## Build a release into dist/ without a container engine (VERSION=v0.2.0; REGISTRY=ghcr.io/example pushes; SIGNING_KEY=cosign.key signs, password in COSIGN_PASSWORD).
	rm -rf dist
	go run ./hack/krew -version "$(VERSION)" -release-url "$(RELEASE_URL)" -homepage "$(HOMEPAGE)" -out dist/plugin
	go run ./hack/release -version "$(VERSION)" -registry "$(REGISTRY)" -signing-key "$(SIGNING_KEY)" -public-key "$(PUBLIC_KEY)" -helm $(HELM) -cyclonedx-gomod $(CYCLONEDX_GOMOD) -out dist

.PHONY: krew
krew: ## Build the plugin's release archives and krew manifest into dist/plugin/ (VERSION=v0.1.0; make release does it too).
	go run ./hack/krew -version "$(VERSION)" -release-url "$(RELEASE_URL)" -homepage "$(HOMEPAGE)" -out dist/plugin

.PHONY: run
run: ## Run the controller against the cluster of the current kubeconfig (go run ./cmd/keywarden verifier for the verifier).
	go run ./cmd/keywarden controller

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build -t $(IMG) .

##@ Deployment

.PHONY: install
install: controlplane ## Install the CRDs into the cluster of the current kubeconfig.
	"$$(hack/controlplane.sh)/kubectl" apply -k config/crd

.PHONY: uninstall
uninstall: controlplane ## Remove the CRDs from the cluster of the current kubeconfig.
	"$$(hack/controlplane.sh)/kubectl" delete -k config/crd --ignore-not-found

.PHONY: deploy
deploy: controlplane ## Deploy CRDs, RBAC and the manager with image IMG to the cluster of the current kubeconfig.
	"$$(hack/controlplane.sh)/kubectl" kustomize config/default | sed 's|image: keywarden:dev|image: $(IMG)|' | "$$(hack/controlplane.sh)/kubectl" apply -f -

.PHONY: undeploy
undeploy: controlplane ## Remove the controller from the cluster of the current kubeconfig.
	"$$(hack/controlplane.sh)/kubectl" delete -k config/default --ignore-not-found

##@ Tools

$(CONTROLLER_GEN):
	GOBIN=$(BIN)/.tmp go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/.tmp/controller-gen $@

$(GOLANGCI_LINT):
	GOBIN=$(BIN)/.tmp go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/.tmp/golangci-lint $@

$(HELM): ## helm lints and renders the chart (charts/keywarden).
	GOBIN=$(BIN)/.tmp go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(BIN)/.tmp/helm $@

$(CYCLONEDX_GOMOD): ## cyclonedx-gomod writes the image's SBOM.
	GOBIN=$(BIN)/.tmp go install github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$(CYCLONEDX_GOMOD_VERSION)
	mv $(BIN)/.tmp/cyclonedx-gomod $@

$(CRD_REF_DOCS): ## crd-ref-docs writes the API reference.
	GOBIN=$(BIN)/.tmp go install github.com/elastic/crd-ref-docs@$(CRD_REF_DOCS_VERSION)
	mv $(BIN)/.tmp/crd-ref-docs $@

$(COSIGN): ## cosign verifies the release's signatures in make test-e2e.
	GOBIN=$(BIN)/.tmp go install github.com/sigstore/cosign/v2/cmd/cosign@$(COSIGN_VERSION)
	mv $(BIN)/.tmp/cosign $@

$(PROMTOOL): ## promtool checks and unit-tests the alerts (config/prometheus).
	GOBIN=$(BIN)/.tmp go install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)
	mv $(BIN)/.tmp/promtool $@
