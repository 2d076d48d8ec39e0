// argocd-lua evaluates rollguard's Argo CD resource customizations with Argo CD's own code:
// util/lua (the Lua VM, health scripts, action discovery and actions, as the application
// controller and the API server run them) and gitops-engine's pkg/health (the built-in
// checks). The e2e tests feed it objects read from the API server; `go test` runs the
// table cases in deploy/argocd/resource_customizations.
//
//	argocd-lua [-cm FILE] health FILE        {"health": Argo CD with the customizations, "builtin": without}
//	argocd-lua [-cm FILE] actions FILE       the actions Argo CD offers on the object
//	argocd-lua [-cm FILE] run ACTION FILE    the action's objects and the merge patch Argo CD sends
//	argocd-lua [-dir DIR] configmap          the argocd-cm that installs DIR's customizations
//
// FILE is a JSON or YAML object, or - for stdin.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/argoproj/argo-cd/gitops-engine/v3/pkg/health"
	appv1 "github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"github.com/argoproj/argo-cd/v3/util/lua"
	jsonpatch "github.com/evanphx/json-patch"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func main() {
	cm := flag.String("cm", "deploy/argocd/argocd-cm.yaml", "the argocd-cm whose resource.customizations.* keys Argo CD runs")
	dir := flag.String("dir", "deploy/argocd/resource_customizations", "the customizations to render (configmap)")
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		fail(fmt.Errorf("usage: argocd-lua [-cm FILE] health|actions|run ACTION|configmap [FILE]"))
	}
	if args[0] == "configmap" {
		cs, err := loadCustomizations(*dir)
		check(err)
		out, err := configMap(cs)
		check(err)
		fmt.Print(out)
		return
	}
	doc, err := os.ReadFile(*cm)
	check(err)
	ov, err := overridesFromConfigMap(doc)
	check(err)
	switch {
	case args[0] == "health" && len(args) == 2:
		obj := readObject(args[1])
		with, without, err := healthOf(ov, obj)
		check(err)
		emit(map[string]*health.HealthStatus{"health": with, "builtin": without})
	case args[0] == "actions" && len(args) == 2:
		actions, err := discover(ov, readObject(args[1]))
		check(err)
		emit(actions)
	case args[0] == "run" && len(args) == 3:
		objects, patch, err := runAction(ov, args[1], readObject(args[2]))
		check(err)
		emit(map[string]any{"objects": objects, "patch": json.RawMessage(patch)})
	default:
		fail(fmt.Errorf("unknown command %v", args))
	}
}

// healthOf is the health Argo CD's application controller gives obj with the overrides, and
// without any (its built-in check).
func healthOf(ov map[string]appv1.ResourceOverride, obj *unstructured.Unstructured) (with, without *health.HealthStatus, err error) {
	with, err = health.GetResourceHealth(obj, lua.ResourceHealthOverrides(ov))
	if err != nil {
		return nil, nil, err
	}
	without, err = health.GetResourceHealth(obj, nil)
	return with, without, err
}

// discover runs the action discovery the way the API server lists a resource's actions.
func discover(ov map[string]appv1.ResourceOverride, obj *unstructured.Unstructured) ([]appv1.ResourceAction, error) {
	vm := lua.VM{ResourceOverrides: ov}
	scripts, err := vm.GetResourceActionDiscovery(obj)
	if err != nil {
		return nil, err
	}
	return vm.ExecuteResourceActionDiscovery(obj, scripts)
}

// runAction runs an action the way the API server does (RunResourceActionV2), and returns the
// objects it returned and, for the patch of the object itself, the JSON merge patch the API
// server would send (the difference between the live object and the action's).
func runAction(ov map[string]appv1.ResourceOverride, name string, obj *unstructured.Unstructured) ([]lua.ImpactedResource, []byte, error) {
	vm := lua.VM{ResourceOverrides: ov}
	action, err := vm.GetResourceAction(obj, name)
	if err != nil {
		return nil, nil, err
	}
	impacted, err := vm.ExecuteResourceAction(obj, action.ActionLua, nil)
	if err != nil {
		return nil, nil, err
	}
	patch := []byte("{}")
	live, err := json.Marshal(obj)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range impacted {
		if r.K8SOperation != lua.PatchOperation {
			continue
		}
		changed, err := json.Marshal(r.UnstructuredObj)
		if err != nil {
			return nil, nil, err
		}
		if patch, err = jsonpatch.CreateMergePatch(live, changed); err != nil {
			return nil, nil, err
		}
	}
	return impacted, patch, nil
}

func readObject(path string) *unstructured.Unstructured {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(path)
	}
	check(err)
	obj, err := parseObject(b)
	check(err)
	return obj
}

// parseObject decodes an object as Argo CD decodes a live one (integers stay int64).
func parseObject(b []byte) (*unstructured.Unstructured, error) {
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, err
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(j); err != nil {
		return nil, err
	}
	return obj, nil
}

func emit(v any) {
	b, err := json.Marshal(v)
	check(err)
	fmt.Println(string(b))
}

func check(err error) {
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "argocd-lua:", err)
	os.Exit(1)
}
