module github.com/m2m-dev/m2m-operator/verify

go 1.25.0

require (
	github.com/go-jose/go-jose/v4 v4.1.9
	golang.org/x/sync v0.20.0
)
