module github.com/m2m-dev/m2m-operator/verify/grpcverify

go 1.25.0

require (
	github.com/m2m-dev/m2m-operator/verify v0.0.0
	google.golang.org/grpc v1.82.1
)

require (
	github.com/go-jose/go-jose/v4 v4.1.9 // indirect
	golang.org/x/net v0.53.0 // indirect
	golang.org/x/sync v0.20.0 // indirect
	golang.org/x/sys v0.43.0 // indirect
	golang.org/x/text v0.36.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260414002931-afd174a4e478 // indirect
	google.golang.org/protobuf v1.36.11 // indirect
)

replace github.com/m2m-dev/m2m-operator/verify => ../
