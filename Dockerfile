# Build the binaries: static, trimmed, the same flags as `make build`. m2m has every command;
# m2m-tokenserver is the token server alone (what its Deployment runs).
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /workspace
COPY go.mod go.sum ./
COPY verify/go.mod verify/go.sum verify/
RUN go mod download
COPY main.go ./
COPY api/ api/
COPY config/ config/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
COPY tokenserver/ tokenserver/
COPY verify/ verify/
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -o m2m . && \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -o m2m-tokenserver ./cmd/m2m-tokenserver

# Distroless static, non-root: nothing but the binaries.
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/m2m /m2m
COPY --from=builder /workspace/m2m-tokenserver /m2m-tokenserver
USER 65532:65532
ENTRYPOINT ["/m2m"]
