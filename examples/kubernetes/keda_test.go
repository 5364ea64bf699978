package kubernetes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/examples/contracts"
	"github.com/purista-go/purista/examples/system"
	"github.com/purista-go/purista/transport/kafka"
)

// KEDA's release whose CustomResourceDefinition and Kafka scaler the
// ScaledObjects are checked against. Its Go module (from the Go module
// proxy, checked against the checksum database and the sum below) carries
// both: config/crd/bases/keda.sh_scaledobjects.yaml and
// pkg/scalers/kafka_scaler.go.
const (
	kedaModule  = "github.com/kedacore/keda/v2"
	kedaVersion = "v2.21.0"
	kedaSum     = "h1:R6z2HZvstK4RLUMxroNACzBj74xGxt3kG59b5Xc+Xps="
)

// scaledObject is a KEDA ScaledObject as the manifests hold it: checked
// against KEDA's schema, not a Go type.
type scaledObject map[string]any

// triggerAuth is a KEDA TriggerAuthentication, likewise.
type triggerAuth map[string]any

// kedaSource downloads KEDA's module and returns its directory.
func kedaSource(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", kedaModule+"@"+kedaVersion)
	cmd.Dir = t.TempDir() // outside any module: nothing is added to a go.mod
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	runErr := cmd.Run()
	var m struct{ Dir, Sum, Error string }
	if err := json.Unmarshal(out.Bytes(), &m); err != nil || runErr != nil || m.Error != "" {
		t.Fatalf("go mod download %s@%s (KEDA's CRDs and scalers, from the Go module proxy): %v %s %s", kedaModule, kedaVersion, runErr, m.Error, errb.String())
	}
	if m.Sum != kedaSum {
		t.Fatalf("%s@%s has checksum %s, want %s", kedaModule, kedaVersion, m.Sum, kedaSum)
	}
	return m.Dir
}

// scaledObjectSchema returns the v1alpha1 schema of KEDA's ScaledObject
// CRD as a JSON Schema that, as the API server does, refuses fields the
// schema does not name.
func scaledObjectSchema(t *testing.T, dir string) *jsonschema.Schema {
	return crdSchema(t, dir, "keda.sh_scaledobjects.yaml")
}

// crdSchema returns the v1alpha1 schema of one of KEDA's CRDs, likewise.
func crdSchema(t *testing.T, dir, file string) *jsonschema.Schema {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "config/crd/bases", file))
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	crd, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	for _, v := range dig(crd, "spec", "versions").([]any) {
		if dig(v, "name") == "v1alpha1" {
			schema, _ = dig(v, "schema", "openAPIV3Schema").(map[string]any)
		}
	}
	if schema == nil {
		t.Fatalf("KEDA's %s has no v1alpha1 openAPIV3Schema", file)
	}
	strictSchema(schema)
	c := jsonschema.NewCompiler()
	if err := c.AddResource(file+".json", schema); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(file + ".json")
	if err != nil {
		t.Fatalf("KEDA's %s schema does not compile as JSON Schema: %v", file, err)
	}
	return s
}

// strictSchema refuses unknown properties of every object schema that
// lists its properties and does not preserve unknown fields (the API
// server's pruning and strict field validation).
func strictSchema(s map[string]any) {
	props, ok := s["properties"].(map[string]any)
	if ok && s["x-kubernetes-preserve-unknown-fields"] != true && s["additionalProperties"] == nil {
		s["additionalProperties"] = false
	}
	for _, p := range props {
		if ps, ok := p.(map[string]any); ok {
			strictSchema(ps)
		}
	}
	for _, k := range []string{"items", "additionalProperties"} {
		if sub, ok := s[k].(map[string]any); ok {
			strictSchema(sub)
		}
	}
}

func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// kafkaScalerMetadata returns the trigger metadata keys KEDA's Kafka
// scaler reads (keda:"name=...,order=triggerMetadata..." tags; a key read
// from the resolved environment may also be given as <key>FromEnv), and
// the required ones.
func kafkaScalerMetadata(t *testing.T, dir string) (known, required, auth map[string]bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "pkg/scalers/kafka_scaler.go"))
	if err != nil {
		t.Fatal(err)
	}
	known, required, auth = map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, m := range regexp.MustCompile(`keda:"name=(\w+),order=([\w;]+)([^"]*)"`).FindAllStringSubmatch(string(b), -1) {
		name, order, rest := m[1], strings.Split(m[2], ";"), m[3]
		if slices.Contains(order, "authParams") {
			auth[name] = true
		}
		if !slices.Contains(order, "triggerMetadata") {
			continue
		}
		known[name] = true
		if slices.Contains(order, "resolvedEnv") {
			known[name+"FromEnv"] = true
		}
		if !strings.Contains(rest, "optional") && !strings.Contains(rest, "default=") {
			required[name] = true
		}
	}
	if !known["bootstrapServers"] || !known["consumerGroup"] || !known["lagThreshold"] {
		t.Fatalf("found no Kafka scaler metadata in %s@%s's kafka_scaler.go: has its format changed? found %v", kedaModule, kedaVersion, known)
	}
	return known, required, auth
}

// TestKEDAScaledObjects checks every ScaledObject against KEDA's CRD schema
// and Kafka scaler, and against the system: it scales a Deployment of a
// service, to zero, on exactly that service's consumer groups and topics
// (its request group, and a subscription group per event it subscribes
// to), up to no more instances than the topics have partitions, reading
// the brokers from an environment variable the container has.
func TestKEDAScaledObjects(t *testing.T) {
	objs := manifests(t)
	dir := kedaSource(t)
	schema := scaledObjectSchema(t, dir)
	known, required, authParams := kafkaScalerMetadata(t, dir)
	authSchema := crdSchema(t, dir, "keda.sh_triggerauthentications.yaml")

	config := map[string]string{}
	deployments := map[string]*appsv1.Deployment{}
	var scaled []scaledObject
	auths := map[string]triggerAuth{}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.ConfigMap:
			if o.Name == "purista" {
				config = o.Data
			}
		case *appsv1.Deployment:
			deployments[o.Name] = o
		case *scaledObject:
			scaled = append(scaled, *o)
		case *triggerAuth:
			auths[fmt.Sprint(dig(map[string]any(*o), "metadata", "name"))] = *o
		}
	}
	for name, ta := range auths {
		if err := validate(authSchema, map[string]any(ta)); err != nil {
			t.Errorf("TriggerAuthentication %s does not match KEDA's CRD schema: %v", name, err)
		}
	}
	prefix := config["PURISTA_TOPIC_PREFIX"]
	covered := map[string]bool{}
	for _, so := range scaled {
		name, _ := dig(map[string]any(so), "metadata", "name").(string)
		where := "ScaledObject " + name
		if err := validate(schema, so); err != nil {
			t.Errorf("%s does not match KEDA's CRD schema: %v", where, err)
			continue
		}
		target, _ := dig(map[string]any(so), "spec", "scaleTargetRef", "name").(string)
		d := deployments[target]
		if d == nil || len(d.Spec.Template.Spec.Containers) != 1 {
			t.Errorf("%s: scaleTargetRef %q is not a Deployment of one container", where, target)
			continue
		}
		c := d.Spec.Template.Spec.Containers[0]
		component := c.Command[0]
		svc := serviceContract(component)
		if svc == nil {
			t.Errorf("%s: scales %s, which runs %s, not a service", where, target, component)
			continue
		}
		covered[component] = true
		if d.Spec.Replicas != nil {
			t.Errorf("%s: Deployment %s sets replicas, which every apply would reset under KEDA: leave it out", where, target)
		}
		env := containerEnv(t, where, c, config)

		want := map[string]int{prefix + kafka.RequestGroup(svc.Name) + " " + prefix + requestTopic(svc): partitions(svc.Partitions)}
		for _, m := range svc.Methods {
			if ev := m.Subscribe; ev != nil {
				want[prefix+kafka.SubscriptionGroup(svc.Name, ev.Name)+" "+prefix+purista.EventTopic(ev)] = partitions(ev.Partitions)
			}
		}
		maxParts := 0
		got := map[string]bool{}
		triggers, _ := dig(map[string]any(so), "spec", "triggers").([]any)
		for i, tr := range triggers {
			tw := fmt.Sprintf("%s trigger %d", where, i)
			if dig(tr, "type") != "kafka" {
				t.Errorf("%s: type %v, want kafka", tw, dig(tr, "type"))
				continue
			}
			md, _ := dig(tr, "metadata").(map[string]any)
			for k, v := range md {
				if !known[k] {
					t.Errorf("%s: metadata %s is not one KEDA's Kafka scaler reads", tw, k)
				}
				if _, ok := v.(string); !ok {
					t.Errorf("%s: metadata %s is %T; KEDA's metadata values are strings", tw, k, v)
				}
			}
			for k := range required {
				if md[k] == nil && md[k+"FromEnv"] == nil {
					t.Errorf("%s: KEDA's Kafka scaler requires %s (or %sFromEnv)", tw, k, k)
				}
			}
			if v, ok := md["bootstrapServersFromEnv"].(string); ok && env[v] == "" {
				t.Errorf("%s: bootstrapServersFromEnv %s is not set in %s's container", tw, v, target)
			}
			checkKafkaAuth(t, tw, tr, auths, authParams, c, config)
			if md["offsetResetPolicy"] != "earliest" {
				t.Errorf("%s: offsetResetPolicy %v: a new group starts at the earliest offset, so must the lag", tw, md["offsetResetPolicy"])
			}
			for _, k := range []string{"lagThreshold", "activationLagThreshold"} {
				if n, err := strconv.Atoi(fmt.Sprint(md[k])); err != nil || n < 0 {
					t.Errorf("%s: %s %v is not a whole number", tw, k, md[k])
				}
			}
			key := fmt.Sprint(md["consumerGroup"]) + " " + fmt.Sprint(md["topic"])
			p, ok := want[key]
			if !ok {
				t.Errorf("%s: group and topic %q are not one of %s's: %v", tw, key, svc.Name, keys(want))
			}
			got[key] = true
			maxParts = max(maxParts, p)
		}
		for k := range want {
			if !got[k] {
				t.Errorf("%s: no trigger on %s's group and topic %q: its lag would not wake it", where, svc.Name, k)
			}
		}
		minR, _ := dig(map[string]any(so), "spec", "minReplicaCount").(float64)
		maxR, _ := dig(map[string]any(so), "spec", "maxReplicaCount").(float64)
		if minR != 0 {
			t.Errorf("%s: minReplicaCount %v, want 0: requests wait in Kafka, so the service may scale to zero", where, minR)
		}
		if maxR < 1 || int(maxR) > maxParts {
			t.Errorf("%s: maxReplicaCount %v, want 1 to %d (the partitions of its topics; more instances would idle)", where, maxR, maxParts)
		}
	}
	for _, s := range system.Services {
		if !covered[s] {
			t.Errorf("service %s has no ScaledObject", s)
		}
	}
}

// TestKEDASchemaRefuses checks the check: a misspelt field fails it.
func TestKEDASchemaRefuses(t *testing.T) {
	schema := scaledObjectSchema(t, kedaSource(t))
	for _, doc := range []string{
		`{"apiVersion":"keda.sh/v1alpha1","kind":"ScaledObject","metadata":{"name":"x"},"spec":{"scaleTargetRef":{"name":"x"},"minReplicas":0,"triggers":[{"type":"kafka","metadata":{}}]}}`,
		`{"apiVersion":"keda.sh/v1alpha1","kind":"ScaledObject","metadata":{"name":"x"},"spec":{"scaleTargetRef":{"name":"x"},"minReplicaCount":"zero","triggers":[{"type":"kafka","metadata":{}}]}}`,
		`{"apiVersion":"keda.sh/v1alpha1","kind":"ScaledObject","metadata":{"name":"x"},"spec":{"triggers":[{"type":"kafka","metadata":{}}]}}`,
	} {
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
		if err != nil {
			t.Fatal(err)
		}
		if schema.Validate(inst) == nil {
			t.Errorf("KEDA's schema accepts %s", doc)
		}
	}
}

func validate(schema *jsonschema.Schema, so map[string]any) error {
	b, err := json.Marshal(so)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return err
	}
	return schema.Validate(inst)
}

// serviceContract returns the contract of a service component ("users" →
// users.v1.UsersService).
func serviceContract(component string) *purista.Service {
	if !slices.Contains(system.Services, component) {
		return nil
	}
	for _, s := range contracts.Services() {
		if strings.HasPrefix(s.Name, component+".") {
			return s
		}
	}
	return nil
}

func requestTopic(s *purista.Service) string {
	if s.RequestTopic != "" {
		return s.RequestTopic
	}
	return purista.DefaultRequestTopic(s.Name)
}

// partitions is a topic's partition count, 3 when the contract leaves it
// to the default of purista topics ensure.
func partitions(n int32) int {
	if n > 0 {
		return int(n)
	}
	return 3
}

func keys(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// checkKafkaAuth checks that a trigger logs in to the cluster as the
// components do: TLS and SASL as the ConfigMap turns them on, through a
// TriggerAuthentication of the manifests whose parameters KEDA's Kafka
// scaler reads, taking the user name from the container's environment and
// the password from the Secret the container's password comes from.
func checkKafkaAuth(t *testing.T, where string, trigger any, auths map[string]triggerAuth, authParams map[string]bool, c corev1.Container, config map[string]string) {
	t.Helper()
	md, _ := dig(trigger, "metadata").(map[string]any)
	if config["PURISTA_KAFKA_TLS"] == "true" && md["tls"] != "enable" {
		t.Errorf("%s: the cluster takes TLS (PURISTA_KAFKA_TLS), the trigger's tls is %v, want enable", where, md["tls"])
	}
	wantSASL := map[string]string{"": "", "PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}[config["PURISTA_KAFKA_SASL_MECHANISM"]]
	if got, _ := md["sasl"].(string); got != wantSASL {
		t.Errorf("%s: sasl %q, want %q for PURISTA_KAFKA_SASL_MECHANISM %q", where, got, wantSASL, config["PURISTA_KAFKA_SASL_MECHANISM"])
	}
	if wantSASL == "" {
		return
	}
	ref, _ := dig(trigger, "authenticationRef", "name").(string)
	ta, ok := auths[ref]
	if !ok {
		t.Errorf("%s: authenticationRef %q is no TriggerAuthentication of the manifests", where, ref)
		return
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	params := map[string]bool{}
	entries := func(key string) []any { v, _ := dig(map[string]any(ta), "spec", key).([]any); return v }
	for _, e := range entries("env") {
		p, name := fmt.Sprint(dig(e, "parameter")), fmt.Sprint(dig(e, "name"))
		params[p] = true
		if cn := dig(e, "containerName"); cn != nil && cn != c.Name {
			t.Errorf("%s: TriggerAuthentication %s reads container %v, the target's is %s", where, ref, cn, c.Name)
		}
		if _, ok := env[name]; !ok {
			t.Errorf("%s: TriggerAuthentication %s reads %s, which container %s does not set", where, ref, name, c.Name)
		}
	}
	for _, s := range entries("secretTargetRef") {
		p, name, key := fmt.Sprint(dig(s, "parameter")), fmt.Sprint(dig(s, "name")), fmt.Sprint(dig(s, "key"))
		params[p] = true
		found := false
		for _, e := range c.Env {
			if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil && r.SecretKeyRef.Name == name && r.SecretKeyRef.Key == key {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: TriggerAuthentication %s reads Secret %s key %s, which container %s does not use: not its password", where, ref, name, key, c.Name)
		}
	}
	for p := range params {
		if !authParams[p] {
			t.Errorf("%s: TriggerAuthentication %s sets %s, which KEDA's Kafka scaler does not read", where, ref, p)
		}
	}
	for _, p := range []string{"username", "password"} {
		if !params[p] {
			t.Errorf("%s: TriggerAuthentication %s gives no %s for SASL", where, ref, p)
		}
	}
}
