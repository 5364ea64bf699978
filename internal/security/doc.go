// Package security holds the least-privilege suite (make security): the
// example system on an Apache Kafka broker with SASL_SSL (SCRAM-SHA-512),
// the standard authorizer and the ACLs `purista acl apply` derives from
// the contracts, then every act docs/security.md forbids, each of which
// must fail at once with an authorization error that names the principal
// and the resource. Its test skips unless PURISTA_SECURITY=1.
package security
