package cluster

// This file: a secured cluster — SASL_SSL (SCRAM-SHA-512) for clients,
// mutual TLS between the brokers and to the controllers, and Kafka's
// standard authorizer, with certificates made at start.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// Security secures a cluster: clients must connect over TLS and
// authenticate with SASL/SCRAM-SHA-512 on the CLIENT listener; brokers
// and controllers authenticate one another with certificates on the
// INTERNAL and CONTROLLER listeners; the StandardAuthorizer denies
// whatever no ACL allows. The admin user (a super user) is created when
// the nodes are formatted; create the others through the admin API.
type Security struct {
	// AdminUser and AdminPassword are the super user's SCRAM credentials
	// (default "admin" and a random password).
	AdminUser, AdminPassword string
}

// brokerPrincipal is the principal of the brokers' certificate, a super
// user so that brokers may replicate and talk to the controllers.
const brokerPrincipal = "CN=purista-broker"

// pki is the certificate authority and the brokers' key of a secured
// cluster, as PEM files in its directory.
type pki struct {
	caFile     string // the CA certificate
	brokerFile string // the brokers' private key and certificate chain
	pool       *x509.CertPool
}

func (s *Security) defaults() {
	if s.AdminUser == "" {
		s.AdminUser = "admin"
	}
	if s.AdminPassword == "" {
		s.AdminPassword = randomPassword()
	}
}

func randomPassword() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}

// newPKI makes a CA valid for a day and a certificate for 127.0.0.1 signed
// by it, and writes them to dir.
func newPKI(dir string) (*pki, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "purista test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "purista-broker"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// Brokers are servers to clients and clients of one another.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	p := &pki{caFile: filepath.Join(dir, "ca.pem"), brokerFile: filepath.Join(dir, "broker.pem"), pool: x509.NewCertPool()}
	p.pool.AddCert(caCert)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	// Kafka's PEM key store: an unencrypted PKCS#8 key, then the chain.
	brokerPEM := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	brokerPEM = append(brokerPEM, caPEM...)
	if err := os.WriteFile(p.caFile, caPEM, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.brokerFile, brokerPEM, 0o600); err != nil {
		return nil, err
	}
	return p, nil
}

// secureProps sets the listeners' security and the authorizer.
func (c *Cluster) secureProps(p *Props) {
	s := c.cfg.Security
	p.Set("listener.security.protocol.map", "CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL")
	p.Set("ssl.keystore.type", "PEM")
	p.Set("ssl.keystore.location", c.pki.brokerFile)
	p.Set("ssl.truststore.type", "PEM")
	p.Set("ssl.truststore.location", c.pki.caFile)
	p.Set("listener.name.internal.ssl.client.auth", "required")
	p.Set("listener.name.controller.ssl.client.auth", "required")
	p.Set("sasl.enabled.mechanisms", "SCRAM-SHA-512")
	p.Set("listener.name.client.sasl.enabled.mechanisms", "SCRAM-SHA-512")
	p.Set("listener.name.client.scram-sha-512.sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required;")
	p.Set("authorizer.class.name", "org.apache.kafka.metadata.authorizer.StandardAuthorizer")
	p.Set("allow.everyone.if.no.acl.found", "false")
	p.Set("super.users", "User:"+s.AdminUser+";User:"+brokerPrincipal)
}

// formatArgs are the StorageTool arguments that create the admin user.
func (c *Cluster) formatArgs() []string {
	if c.cfg.Security == nil {
		return nil
	}
	s := c.cfg.Security
	return []string{"--add-scram", fmt.Sprintf("SCRAM-SHA-512=[name=%s,password=%s]", s.AdminUser, s.AdminPassword)}
}

// Secured reports whether the cluster was started with Config.Security.
func (c *Cluster) Secured() bool { return c.cfg.Security != nil }

// CAFile returns the PEM file of the CA that signed the brokers'
// certificate ("" for a cluster without Security).
func (c *Cluster) CAFile() string {
	if c.pki == nil {
		return ""
	}
	return c.pki.caFile
}

// TLSConfig returns a client TLS configuration that trusts the brokers
// (nil for a cluster without Security).
func (c *Cluster) TLSConfig() *tls.Config {
	if c.pki == nil {
		return nil
	}
	return &tls.Config{RootCAs: c.pki.pool, MinVersion: tls.VersionTLS12}
}

// Admin returns the super user's credentials ("" for a cluster without
// Security).
func (c *Cluster) Admin() (user, password string) {
	if c.cfg.Security == nil {
		return "", ""
	}
	return c.cfg.Security.AdminUser, c.cfg.Security.AdminPassword
}

// adminSASL is the harness's own SASL mechanism: the admin's, or nil.
func (c *Cluster) adminSASL() sasl.Mechanism {
	if c.cfg.Security == nil {
		return nil
	}
	m, err := scram.Mechanism(scram.SHA512, c.cfg.Security.AdminUser, c.cfg.Security.AdminPassword)
	if err != nil {
		return nil
	}
	return m
}

// dialer and transport are how the harness reaches the brokers: as the
// admin over TLS on a secured cluster.
func (c *Cluster) dialer(timeout time.Duration) *kafka.Dialer {
	return &kafka.Dialer{Timeout: timeout, TLS: c.TLSConfig(), SASLMechanism: c.adminSASL()}
}

func (c *Cluster) transport() *kafka.Transport {
	return &kafka.Transport{TLS: c.TLSConfig(), SASL: c.adminSASL()}
}
