# Build the m2m binary: static, trimmed, the same flags as `make build`.
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
COPY controllers/ controllers/
COPY internal/ internal/
COPY tokenserver/ tokenserver/
COPY verify/ verify/
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -o m2m .

# Distroless static, non-root: nothing but the binary.
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/m2m /m2m
USER 65532:65532
ENTRYPOINT ["/m2m"]
