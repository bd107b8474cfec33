# m2m-operator — build, generate, test and run.

IMG ?= m2m-operator:dev
# Kubernetes version of the envtest control plane (built from source when it cannot be downloaded).
ENVTEST_K8S_VERSION ?= 1.37.2
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GO ?= go
export GOTOOLCHAIN ?= local

# Build tools (controller-gen, golangci-lint) are built once from the Go module proxy into a cache
# outside the repository, one file per version: a clean clone (CI) and every worktree find them
# again, and `git clean` never drops them. Override with LOCALBIN=<dir>.
LOCALBIN ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/m2m-operator/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
# promtool (the rule unit tests of config/monitoring) is built from the Prometheus version pinned in
# hack/promql/go.mod, as is promql-metrics (hack/promql: the metric names of a PromQL expression).
PROMETHEUS_VERSION := $(shell awk '$$1 == "require" { $$1 = "" } $$1 == "github.com/prometheus/prometheus" { print $$2 } $$2 == "github.com/prometheus/prometheus" { print $$3 }' hack/promql/go.mod)
# Built without Prometheus's service-discovery plugins (-tags remove_all_sd; the rule tests need
# none): about a fifth fewer packages to compile on a fresh machine, and a 77 MB binary, not 123.
PROMTOOL ?= $(LOCALBIN)/promtool-$(PROMETHEUS_VERSION)-nosd
PROMQL_METRICS ?= $(CURDIR)/bin/promql-metrics

# Helm, for the chart's tests (lint, template, install into envtest): built from the Go module
# proxy with the version stamps its own release build sets (its version, and the Kubernetes
# version `helm template` and `helm lint` assume: that of its client-go, 1.37).
HELM_VERSION ?= v3.22.0
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)
HELM_LDFLAGS = -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	$(foreach p,pkg/lint/rules pkg/chartutil,-X helm.sh/helm/v3/$(p).k8sVersionMajor=1 -X helm.sh/helm/v3/$(p).k8sVersionMinor=37)

# Caddy, the gateway the e2e tests run forward_auth with (built from the Go module proxy).
CADDY_VERSION ?= v2.11.9
CADDY ?= $(LOCALBIN)/caddy-$(CADDY_VERSION)
# Extra flags for go test, e.g. make test TEST_FLAGS='-run TestFoo -v'.
TEST_FLAGS ?=
DEV_ADDR ?= 127.0.0.1:8080

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC from the kubebuilder markers.
	$(CONTROLLER_GEN) rbac:roleName=controller crd paths="./api/..." paths="./controllers/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) rbac:roleName=tokenserver paths="./tokenserver/..." output:rbac:artifacts:config=config/rbac/tokenserver
	$(CONTROLLER_GEN) rbac:roleName=authz paths="./internal/authz/..." output:rbac:artifacts:config=config/authz

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods, the flag reference (docs/flags.md), the PrometheusRule of config/monitoring and the Helm chart's copies of config/ (CRDs, RBAC rules, monitoring).
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."
	$(GO) run ./hack/flagdoc > docs/flags.md
	$(GO) run ./hack/promrule config/monitoring/alerts.yaml > config/monitoring/prometheusrule.yaml
	hack/chart-sync.sh

# verify and verify/grpcverify are modules of their own (what API teams import); the operator's
# module uses them through a replace. fmt, vet and test cover them too.
VERIFY_MODULES = verify verify/grpcverify

.PHONY: chart
chart: ## Refresh the Helm chart's copies of config/ (CRDs, RBAC rules, monitoring files); part of make generate.
	hack/chart-sync.sh

.PHONY: helm-lint
helm-lint: helm ## Lint the Helm chart strictly, with the default values and with every toggle on.
	$(HELM) lint --strict charts/m2m-operator
	$(HELM) lint --strict charts/m2m-operator -f charts/testdata/all-values.yaml

.PHONY: fmt
fmt: ## Run go fmt.
	$(GO) fmt ./...
	@for m in $(VERIFY_MODULES); do (cd "$$m" && $(GO) fmt ./...); done

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet ./...
	@for m in $(VERIFY_MODULES); do (cd "$$m" && $(GO) vet ./...); done

# Every Go module of the repository (test/interop, and verify once it has its own go.mod), each
# linted from its directory with the one .golangci.yml.
GO_MODULES = $(patsubst %/go.mod,%,$(shell find . -name go.mod -not -path '*/node_modules/*' -not -path './.dev/*' | sort))

.PHONY: lint
lint: golangci-lint ## Run golangci-lint with .golangci.yml (linters and gofmt/goimports) in every Go module.
	@status=0; for m in $(GO_MODULES); do echo "golangci-lint: $$m" >&2; \
		(cd "$$m" && $(GOLANGCI_LINT) run --config "$(CURDIR)/.golangci.yml" ./...) || status=1; done; exit $$status

.PHONY: lint-fix
lint-fix: golangci-lint ## Run golangci-lint and apply its fixes (formatting included) in every Go module.
	@for m in $(GO_MODULES); do (cd "$$m" && $(GOLANGCI_LINT) run --config "$(CURDIR)/.golangci.yml" --fix ./...) || exit 1; done

.PHONY: check-verify-deps
check-verify-deps: ## Check that a fresh module importing verify (its own module) gets no k8s.io or sigs.k8s.io module.
	hack/check-verify-deps.sh

.PHONY: envtest
envtest: ## Print (and, the first time, build or download) the envtest control-plane directory.
	@ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) hack/setup-envtest.sh

.PHONY: test
test: manifests generate fmt vet promtool helm ## Unit and envtest suites: every package but ./test/... (coverage in cover.out; the alert rule tests and the chart's with the real Helm included), then the verify modules.
	@assets="$$(ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) hack/setup-envtest.sh)"; \
		pkgs="$$($(GO) list ./... | grep -v "^$$($(GO) list -m)/test/")"; \
		KUBEBUILDER_ASSETS="$$assets" M2M_PROMTOOL="$(PROMTOOL)" M2M_PROMQL_METRICS="$(PROMQL_METRICS)" M2M_HELM="$(HELM)" \
			$(GO) test $$pkgs -coverprofile cover.out $(TEST_FLAGS); \
		for m in $(VERIFY_MODULES); do (cd "$$m" && $(GO) test ./... -cover $(TEST_FLAGS)); done

.PHONY: test-alerts
test-alerts: promtool ## Check the alert rules and run their unit tests (promtool), and check every metric the alerts and the dashboard name is one the code registers.
	$(PROMTOOL) check rules config/monitoring/alerts.yaml
	cd config/monitoring && $(PROMTOOL) test rules alerts_test.yaml
	M2M_PROMTOOL="$(PROMTOOL)" M2M_PROMQL_METRICS="$(PROMQL_METRICS)" $(GO) test ./config/monitoring -count=1 $(TEST_FLAGS)

.PHONY: gateway-tools
gateway-tools: ## Install the gateways the e2e tests run in front of m2m authz: Debian's nginx-light + headers-more (when root with apt-get) and Caddy (built once).
	@hack/install-gateways.sh
	@$(MAKE) --no-print-directory caddy || echo "gateway-tools: could not build Caddy $(CADDY_VERSION): the Caddy tests will skip" >&2

.PHONY: test-e2e
test-e2e: manifests generate helm gateway-tools ## End-to-end suites (test/e2e, test/docs, test/skew): the built system, driven as a user drives it.
	@assets="$$(ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) hack/setup-envtest.sh)"; \
		kubectl="$$(ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) hack/setup-envtest.sh kubectl)"; \
		KUBEBUILDER_ASSETS="$$assets" M2M_KUBECTL="$$kubectl" M2M_HELM="$(HELM)" CADDY="$(CADDY)" $(GO) test ./test/... $(TEST_FLAGS)

.PHONY: interop
interop: ## Interop suite: Go (go-oidc, golang-jwt + keyfunc, jwx, x/oauth2) and Node (openid-client, oauth4webapi, jose, express-oauth2-jwt-bearer; pinned, npm ci) libraries against the real system, for each signing algorithm.
	hack/interop-npm.sh
	KUBEBUILDER_ASSETS="$$(ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) hack/setup-envtest.sh)" \
		sh -c 'cd test/interop && $(GO) test ./... -count=1 -timeout 20m $(TEST_FLAGS)'

.PHONY: fuzz
fuzz: ## Run every fuzz target briefly (FUZZTIME=10s).
	hack/fuzz.sh $(or $(FUZZTIME),10s)

.PHONY: scale
scale: ## Scale tests on envtest: client readiness against the API server's own write path (SCALE_CLIENTS, default 1000), policy-edit propagation (1,000 clients, 50 policies), token server RSS and record-change latency (SCALE_RECORDS, default 10000; SCALE_GRANTS distinct grants, default 50).
	@mkdir -p bin
	KUBEBUILDER_ASSETS="$$(ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) hack/setup-envtest.sh)" \
		sh -c '$(GO) test -tags scale ./controllers -run TestControllers -ginkgo.focus Scale -timeout 40m -v; c=$$?; \
		$(GO) test -tags scale ./tokenserver -run TestScaleTokenServer -timeout 30m -v; t=$$?; exit $$((c | t))' >bin/scale.log 2>&1; \
		status=$$?; grep -oE 'SCALE .*' bin/scale.log; [ $$status -eq 0 ] || { tail -40 bin/scale.log; exit $$status; }

.PHONY: bench
bench: ## Run the benchmarks and print the performance table.
	KUBEBUILDER_ASSETS="$$(ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) hack/setup-envtest.sh)" hack/bench.sh

.PHONY: bench-hydra
bench-hydra: ## Same load against Ory Hydra v2.3.0 (built once from the Go module proxy) and our token server, side by side.
	hack/hydra-bench.sh

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build the m2m binary, the token server alone (bin/m2m-tokenserver) and the kubectl-m2m plugin (docs/kubectl-plugin.md).
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/m2m .
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/m2m-tokenserver ./cmd/m2m-tokenserver
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/kubectl-m2m ./cmd/kubectl-m2m

.PHONY: run
run: manifests generate fmt vet ## Run the controller against the cluster in ~/.kube/config.
	$(GO) run . controller

.PHONY: dev
dev: build ## Run the whole system locally: control plane, controller, token server, samples.
	@assets="$$(ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) hack/setup-envtest.sh)"; \
		KUBEBUILDER_ASSETS="$$assets" bin/m2m dev --addr $(DEV_ADDR) --dir .dev

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build -t $(IMG) .

##@ Deployment

.PHONY: install
install: manifests ## Install the foundation (CRDs and the two namespaces) into the cluster in ~/.kube/config.
	$(GO) run ./hack/render config/foundation | kubectl apply --server-side -f -

.PHONY: uninstall
uninstall: ## Delete the foundation: EVERY M2MClient, ScopePolicy, credential, signing key and the CA (CONFIRM=yes).
	@[ "$(CONFIRM)" = yes ] || { echo "make uninstall deletes every M2MClient, ScopePolicy and credential in the cluster, the signing keys and the CA; run 'make uninstall CONFIRM=yes' to do it, or 'make undeploy' to remove only the workloads" >&2; exit 1; }
	$(GO) run ./hack/render config/foundation | kubectl delete --ignore-not-found -f -

.PHONY: render
render: ## Print the complete install as YAML, with IMG as the image of both components.
	@$(GO) run ./hack/render --image $(IMG) config/default

.PHONY: deploy
deploy: manifests ## Deploy everything into the cluster in ~/.kube/config, running IMG.
	$(GO) run ./hack/render --image $(IMG) config/default | kubectl apply --server-side -f -

.PHONY: undeploy
undeploy: ## Remove the workloads; the foundation (CRDs, namespaces, every credential, the signing keys and the CA) stays.
	$(GO) run ./hack/render config/workloads | kubectl delete --ignore-not-found -f -

##@ Dependencies

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Build controller-gen once into the tool cache (LOCALBIN, default ~/.cache/m2m-operator/bin).
$(CONTROLLER_GEN):
	$(call go-install-tool,$@,sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

.PHONY: caddy
caddy: $(CADDY) ## Build Caddy once into the tool cache (LOCALBIN), for the gateway tests.
$(CADDY):
	$(call go-install-tool,$@,github.com/caddyserver/caddy/v2/cmd/caddy,$(CADDY_VERSION))

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Build golangci-lint once into the tool cache (LOCALBIN).
$(GOLANGCI_LINT):
	$(call go-install-tool,$@,github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

.PHONY: promtool
promtool: $(PROMTOOL) ## Build promtool once into the tool cache (LOCALBIN), and bin/promql-metrics (hack/promql; rebuilt each time, from the build cache).
	@cd hack/promql && $(GO) build -o "$(PROMQL_METRICS)" .
$(PROMTOOL):
	$(if $(PROMETHEUS_VERSION),,$(error no github.com/prometheus/prometheus version found in hack/promql/go.mod))
	@mkdir -p "$(LOCALBIN)"; \
	tmp="$$(mktemp -d "$(LOCALBIN)/.install.XXXXXX")"; \
	echo "building promtool $(PROMETHEUS_VERSION) into $@ (once; a few minutes)" >&2; \
	(cd hack/promql && $(GO) build -tags remove_all_sd -o "$$tmp/promtool" github.com/prometheus/prometheus/cmd/promtool) || { rm -rf "$$tmp"; exit 1; }; \
	mv "$$tmp/promtool" "$@"; \
	rm -rf "$$tmp"

.PHONY: helm
helm: $(HELM) ## Build Helm once into the tool cache (LOCALBIN) and link it as bin/helm.
	@mkdir -p bin && ln -sfn "$(HELM)" bin/helm
$(HELM):
	$(call go-install-tool,$@,helm.sh/helm/v3/cmd/helm,$(HELM_VERSION),-ldflags '$(HELM_LDFLAGS)')

.PHONY: helm-path
helm-path: helm ## Print the path of the Helm binary (built once), for tests and scripts.
	@echo "$(HELM)"

# go-install-tool builds $(2)@$(3) into the versioned path $(1), with the go install flags
# $(4) if any. It installs into a private
# temporary directory and renames the binary into place, so two checkouts sharing the cache never
# see a half-written binary or take each other's.
define go-install-tool
@mkdir -p "$(LOCALBIN)"; \
	tmp="$$(mktemp -d "$(LOCALBIN)/.install.XXXXXX")"; \
	echo "building $(2)@$(3) into $(1) (once)" >&2; \
	GOBIN="$$tmp" $(GO) install $(4) "$(2)@$(3)" || { rm -rf "$$tmp"; exit 1; }; \
	mv "$$tmp/$(notdir $(2))" "$(1)"; \
	rm -rf "$$tmp"
endef
