// Package kubernetes checks the example manifests against the Kubernetes
// API types and against the components they run: every field is one the
// API knows, every command is built into the image, every flag and
// environment variable is one the component reads, with a valid value, and
// every probe asks an endpoint the component serves on the port it listens
// on.
package kubernetes

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/purista-go/purista/examples/system"
	"github.com/purista-go/purista/ops"
)

type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name   string `json:"name"`
		NewTag string `json:"newTag"`
	} `json:"images"`
}

// manifests returns every object of the kustomization, decoded strictly:
// a misspelt or misplaced field fails.
func manifests(t *testing.T) []any {
	t.Helper()
	var k kustomization
	b, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	files, _ := filepath.Glob("*.yaml")
	for _, f := range files {
		if f != "kustomization.yaml" && !slices.Contains(k.Resources, f) {
			t.Errorf("%s is not listed in kustomization.yaml", f)
		}
	}
	var objs []any
	for _, f := range k.Resources {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
			var meta struct {
				Kind string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s document %d: %v", f, i+1, err)
			}
			var obj any
			switch meta.Kind {
			case "Deployment":
				obj = &appsv1.Deployment{}
			case "Service":
				obj = &corev1.Service{}
			case "ConfigMap":
				obj = &corev1.ConfigMap{}
			case "Job":
				obj = &batchv1.Job{}
			case "CronJob":
				obj = &batchv1.CronJob{}
			default:
				t.Fatalf("%s document %d: kind %q has no check here", f, i+1, meta.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s document %d (%s): %v", f, i+1, meta.Kind, err)
			}
			objs = append(objs, obj)
		}
	}
	return objs
}

// imageBinaries returns the commands the Dockerfile builds: the last
// element of each package path it passes to go build.
func imageBinaries(t *testing.T) []string {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var bins []string
	for _, m := range regexp.MustCompile(`\./(?:examples|cmd)/[\w/]+`).FindAllString(string(b), -1) {
		bins = append(bins, filepath.Base(m))
	}
	return bins
}

func TestManifests(t *testing.T) {
	objs := manifests(t)
	bins := imageBinaries(t)
	config := map[string]string{}
	for _, o := range objs {
		if cm, ok := o.(*corev1.ConfigMap); ok && cm.Name == "purista" {
			config = cm.Data
		}
	}
	if config["PURISTA_BROKERS"] == "" {
		t.Fatal("the purista ConfigMap sets no PURISTA_BROKERS")
	}
	var cli string // the purista CLI, built once
	for _, o := range objs {
		var name string
		var pod corev1.PodSpec
		var annotations map[string]string
		switch o := o.(type) {
		case *appsv1.Deployment:
			name, pod, annotations = o.Name, o.Spec.Template.Spec, o.Spec.Template.Annotations
			if !labelsMatch(o.Spec.Selector.MatchLabels, o.Spec.Template.Labels) {
				t.Errorf("deployment %s: selector %v does not select its pods %v", name, o.Spec.Selector.MatchLabels, o.Spec.Template.Labels)
			}
		case *batchv1.Job:
			name, pod = o.Name, o.Spec.Template.Spec
		case *batchv1.CronJob:
			name, pod = o.Name, o.Spec.JobTemplate.Spec.Template.Spec
		default:
			continue
		}
		for _, c := range pod.Containers {
			where := fmt.Sprintf("%s container %s", name, c.Name)
			if len(c.Command) == 0 || !slices.Contains(bins, c.Command[0]) {
				t.Errorf("%s: command %v is not one the image builds (%v)", where, c.Command, bins)
				continue
			}
			env := containerEnv(t, where, c, config)
			if c.Command[0] == "purista" {
				if cli == "" {
					cli = build(t, "../../cmd/purista")
				}
				checkCLI(t, where, cli, c.Command[1:], env)
				continue
			}
			checkComponent(t, where, c, env, annotations)
		}
	}
}

func labelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

// containerEnv returns the environment the container gets from the
// ConfigMap and its own entries (a secret's value as "secret").
func containerEnv(t *testing.T, where string, c corev1.Container, config map[string]string) map[string]string {
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil || ef.ConfigMapRef.Name != "purista" {
			t.Errorf("%s: envFrom %+v, want the purista ConfigMap", where, ef)
		}
		for k, v := range config {
			env[k] = v
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = "secret"
		default:
			env[e.Name] = e.Value
		}
	}
	return env
}

// checkComponent parses the container's arguments and environment as the
// component does and checks its ports and probes.
func checkComponent(t *testing.T, where string, c corev1.Container, env map[string]string, annotations map[string]string) {
	name := c.Command[0]
	gateway := name == system.Gateway
	if !gateway && !slices.Contains(system.Services, name) {
		t.Errorf("%s: %s is no component of the example system", where, name)
		return
	}
	// Only this container's environment: nothing left from another one.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "PURISTA_") {
			t.Setenv(k, "")
			_ = os.Unsetenv(k)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var cfg system.Config
	cfg.RegisterFlags(fs, gateway)
	known := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		// A usage names the flag's variable "(env X)", and may name
		// another that sets the same (a password beside its file's path).
		for _, m := range regexp.MustCompile(`\bPURISTA_\w+`).FindAllString(f.Usage, -1) {
			known[m] = true
		}
	})
	for k := range env {
		if !known[k] {
			t.Errorf("%s: %s reads no environment variable %s", where, name, k)
		}
	}
	if err := fs.Parse(append(c.Command[1:], c.Args...)); err != nil {
		t.Errorf("%s: arguments: %v", where, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("%s: %v", where, err)
	}
	addr := cfg.OpsAddr
	if gateway {
		addr = cfg.HTTPAddr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "" {
		t.Errorf("%s: listens on %q: want all interfaces (\":port\") so probes and Services reach it", where, addr)
		return
	}
	var portName string
	for _, p := range c.Ports {
		if fmt.Sprint(p.ContainerPort) == port {
			portName = p.Name
		}
	}
	if portName == "" {
		t.Errorf("%s: listens on port %s, which the container does not declare", where, port)
	}
	if annotations["prometheus.io/port"] != port || annotations["prometheus.io/path"] != ops.PathMetrics {
		t.Errorf("%s: prometheus annotations %v, want port %s path %s", where, annotations, port, ops.PathMetrics)
	}
	for probe, want := range map[*corev1.Probe]string{c.LivenessProbe: ops.PathHealth, c.ReadinessProbe: ops.PathReady} {
		if probe == nil || probe.HTTPGet == nil {
			t.Errorf("%s: a liveness and a readiness probe over HTTP are wanted", where)
			continue
		}
		if probe.HTTPGet.Path != want || (probe.HTTPGet.Port.StrVal != portName && fmt.Sprint(probe.HTTPGet.Port.IntVal) != port) {
			t.Errorf("%s: probe asks %s on port %s, want %s on %s (%s)", where, probe.HTTPGet.Path, probe.HTTPGet.Port.String(), want, port, portName)
		}
	}
}

// checkCLI runs the command with --help: the purista CLI refuses unknown
// subcommands and flags before it prints help.
func checkCLI(t *testing.T, where, cli string, args []string, env map[string]string) {
	cmd := exec.Command(cli, append(args, "--help")...)
	cmd.Env = os.Environ()
	for k, v := range env {
		if !strings.HasPrefix(k, "PURISTA_") {
			t.Errorf("%s: environment variable %s is not one the CLI reads", where, k)
		}
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("%s: purista %s: %v\n%s", where, strings.Join(args, " "), err, out.String())
	}
}

func build(t *testing.T, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = pkg // built in the repository's module
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}
