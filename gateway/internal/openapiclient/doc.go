// Package openapiclient is an HTTP client for the test contracts generated
// by a third-party generator, oapi-codegen, from the OpenAPI 3 document the
// gateway serves on /openapi.v3.json. The gateway's tests use it to show that
// the served document is good enough to generate a working client from, and
// check that the committed files are up to date.
//
// Regenerate after the contracts change:
//
//	go generate ./gateway/internal/openapiclient
package openapiclient

//go:generate go run ./dumpspec -in ../../../gen/openapi/purista.swagger.json -out openapi.v3.json
//go:generate go tool -modfile=../../../tools/go.mod oapi-codegen -config oapi-codegen.yaml openapi.v3.json
