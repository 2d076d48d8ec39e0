package main

// The table cases of deploy/argocd/resource_customizations, in Argo CD's own test layout
// (health_test.yaml, actions/action_test.yaml, testdata/), run through Argo CD's code with the
// argocd-cm the docs show; and the checks that keep that argocd-cm and the docs' copy of it
// the files' own.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/argoproj/argo-cd/gitops-engine/v3/pkg/health"
	appv1 "github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const (
	customizationsDir = "../../deploy/argocd/resource_customizations"
	configMapFile     = "../../deploy/argocd/argocd-cm.yaml"
	gitopsDoc         = "../../docs/gitops.md"
)

type healthTests struct {
	Tests []struct {
		InputPath    string               `json:"inputPath"`
		HealthStatus *health.HealthStatus `json:"healthStatus"`
	} `json:"tests"`
}

type actionTests struct {
	DiscoveryTests []struct {
		InputPath string                 `json:"inputPath"`
		Result    []appv1.ResourceAction `json:"result"`
	} `json:"discoveryTests"`
	ActionTests []struct {
		Action               string `json:"action"`
		InputPath            string `json:"inputPath"`
		ExpectedOutputPath   string `json:"expectedOutputPath"`
		ExpectedErrorMessage string `json:"expectedErrorMessage"`
	} `json:"actionTests"`
}

func load(t *testing.T) map[string]appv1.ResourceOverride {
	t.Helper()
	doc, err := os.ReadFile(configMapFile)
	if err != nil {
		t.Fatal(err)
	}
	ov, err := overridesFromConfigMap(doc)
	if err != nil {
		t.Fatal(err)
	}
	return ov
}

func object(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := parseObject(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return obj
}

// kinds lists the <group>/<Kind> directories.
func kinds(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(customizationsDir, "*", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no customizations under %s: %v", customizationsDir, err)
	}
	return dirs
}

func readYAML(t *testing.T, path string, into any) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return true
}

func TestHealthCases(t *testing.T) {
	ov := load(t)
	n := 0
	for _, dir := range kinds(t) {
		var cases healthTests
		if !readYAML(t, filepath.Join(dir, "health_test.yaml"), &cases) {
			continue
		}
		for _, c := range cases.Tests {
			n++
			t.Run(filepath.Join(strings.TrimPrefix(dir, customizationsDir+"/"), c.InputPath), func(t *testing.T) {
				got, _, err := healthOf(ov, object(t, filepath.Join(dir, c.InputPath)))
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, c.HealthStatus) {
					t.Errorf("health %+v, want %+v", got, c.HealthStatus)
				}
			})
		}
	}
	t.Logf("%d health cases", n)
}

// Every Deployment rollguard does not govern reads exactly as Argo CD's built-in check reads
// it: each apps/Deployment test object without rollguard.dev/policy, through the Lua check
// and through gitops-engine's.
func TestUngovernedDeploymentsReadAsArgoCDsBuiltinCheck(t *testing.T) {
	ov := load(t)
	files, _ := filepath.Glob(filepath.Join(customizationsDir, "apps", "Deployment", "testdata", "*.yaml"))
	more, _ := filepath.Glob(filepath.Join(customizationsDir, "apps", "Deployment", "actions", "testdata", "*.yaml"))
	n := 0
	for _, f := range append(files, more...) {
		obj := object(t, f)
		if obj.GetKind() != "Deployment" {
			continue
		}
		if _, governed := obj.GetAnnotations()["rollguard.dev/policy"]; governed {
			continue
		}
		n++
		with, without, err := healthOf(ov, obj)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(with, without) {
			t.Errorf("%s: Lua %+v, built-in %+v", f, with, without)
		}
	}
	if n < 8 {
		t.Fatalf("only %d ungoverned Deployments compared", n)
	}
	t.Logf("%d ungoverned Deployments: Lua == built-in", n)
}

// The time an action stamps is when it ran: read as Argo CD's own test reads restartedAt.
func normalize(t *testing.T, obj *unstructured.Unstructured) map[string]any {
	t.Helper()
	for _, cmd := range []string{"abort", "pause", "promote"} {
		if _, found, _ := unstructured.NestedMap(obj.Object, "spec", "control", cmd); found {
			if err := unstructured.SetNestedField(obj.Object, "0001-01-01T00:00:00Z", "spec", "control", cmd, "time"); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, err := json.Marshal(obj.Object)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestActionCases(t *testing.T) {
	ov := load(t)
	n := 0
	for _, dir := range kinds(t) {
		var cases actionTests
		actions := filepath.Join(dir, "actions")
		if !readYAML(t, filepath.Join(actions, "action_test.yaml"), &cases) {
			continue
		}
		for _, c := range cases.DiscoveryTests {
			n++
			t.Run(filepath.Join(strings.TrimPrefix(actions, customizationsDir+"/"), "discovery", c.InputPath), func(t *testing.T) {
				got, err := discover(ov, object(t, filepath.Join(actions, c.InputPath)))
				if err != nil {
					t.Fatal(err)
				}
				if len(got) == 0 {
					t.Fatal("no actions discovered")
				}
				for _, a := range got {
					found := false
					for _, want := range c.Result {
						found = found || reflect.DeepEqual(a, want)
					}
					if !found {
						t.Errorf("discovered %+v, not in the expected result", a)
					}
				}
			})
		}
		for _, c := range cases.ActionTests {
			n++
			t.Run(filepath.Join(strings.TrimPrefix(actions, customizationsDir+"/"), c.Action, c.InputPath), func(t *testing.T) {
				in := object(t, filepath.Join(actions, c.InputPath))
				got, patch, err := runAction(ov, c.Action, in)
				if c.ExpectedErrorMessage != "" {
					if err == nil || err.Error() != c.ExpectedErrorMessage {
						t.Fatalf("error %v, want %q", err, c.ExpectedErrorMessage)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 1 || got[0].UnstructuredObj.GetName() != in.GetName() {
					t.Fatalf("want one patch of %s, got %+v", in.GetName(), got)
				}
				want := normalize(t, object(t, filepath.Join(actions, c.ExpectedOutputPath)))
				if have := normalize(t, got[0].UnstructuredObj); !reflect.DeepEqual(have, want) {
					hb, _ := json.MarshalIndent(have, "", " ")
					t.Errorf("output differs from %s:\n%s", c.ExpectedOutputPath, hb)
				}
				t.Logf("merge patch: %s", patch)
			})
		}
	}
	t.Logf("%d action cases", n)
}

// deploy/argocd/argocd-cm.yaml is what the scripts render to, and docs/gitops.md shows it
// whole: what a reader copies is what the tests ran.
func TestConfigMapIsTheScriptsAndTheDocsShowIt(t *testing.T) {
	cs, err := loadCustomizations(customizationsDir)
	if err != nil {
		t.Fatal(err)
	}
	want, err := configMap(cs)
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile(configMapFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(have) != want {
		t.Errorf("%s is not what the scripts render: run `tests/argocd/build.sh configmap > deploy/argocd/argocd-cm.yaml`", configMapFile)
	}
	doc, err := os.ReadFile(gitopsDoc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```yaml\n"+want+"```\n") {
		t.Errorf("%s does not show %s as it is (a ```yaml block holding the whole file)", gitopsDoc, configMapFile)
	}
}
