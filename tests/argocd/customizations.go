package main

// rollguard's resource customizations, read from their directory (Argo CD's
// resource_customizations layout) and given to Argo CD in the form argocd-cm gives them: one
// appv1.ResourceOverride per group/Kind, its actions as the YAML of the
// resource.customizations.actions.<group_Kind> key.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	appv1 "github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"sigs.k8s.io/yaml"
)

// customization is one group/Kind's scripts.
type customization struct {
	key       string // "apps/Deployment", as util/lua keys ResourceOverrides
	health    string
	discovery string
	actions   []appv1.ResourceActionDefinition
}

// loadCustomizations reads every <group>/<Kind> under dir.
func loadCustomizations(dir string) ([]customization, error) {
	groups, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []customization
	for _, g := range groups {
		if !g.IsDir() {
			continue
		}
		kinds, err := os.ReadDir(filepath.Join(dir, g.Name()))
		if err != nil {
			return nil, err
		}
		for _, k := range kinds {
			if !k.IsDir() {
				continue
			}
			c := customization{key: g.Name() + "/" + k.Name()}
			base := filepath.Join(dir, g.Name(), k.Name())
			if b, err := os.ReadFile(filepath.Join(base, "health.lua")); err == nil {
				c.health = string(b)
			} else if !os.IsNotExist(err) {
				return nil, err
			}
			if b, err := os.ReadFile(filepath.Join(base, "actions", "discovery.lua")); err == nil {
				c.discovery = string(b)
				entries, err := os.ReadDir(filepath.Join(base, "actions"))
				if err != nil {
					return nil, err
				}
				for _, e := range entries {
					script, err := os.ReadFile(filepath.Join(base, "actions", e.Name(), "action.lua"))
					if err != nil {
						continue // testdata and the test files
					}
					c.actions = append(c.actions, appv1.ResourceActionDefinition{Name: e.Name(), ActionLua: string(script)})
				}
			} else if !os.IsNotExist(err) {
				return nil, err
			}
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out, nil
}

// actionsYAML is the value of resource.customizations.actions.<group_Kind>. Built-in actions
// are kept beside rollguard's (Argo CD has its own for apps/Deployment).
func (c customization) actionsYAML() (string, error) {
	b, err := yaml.Marshal(appv1.ResourceActions{
		ActionDiscoveryLua:  c.discovery,
		Definitions:         c.actions,
		MergeBuiltinActions: true,
	})
	return string(b), err
}

// overrides is what Argo CD's settings make of the argocd-cm keys configMap writes.
func overrides(cs []customization) (map[string]appv1.ResourceOverride, error) {
	out := map[string]appv1.ResourceOverride{}
	for _, c := range cs {
		o := appv1.ResourceOverride{HealthLua: c.health}
		if c.discovery != "" {
			a, err := c.actionsYAML()
			if err != nil {
				return nil, err
			}
			o.Actions = a
		}
		out[c.key] = o
	}
	return out, nil
}

// configMapKey is the argocd-cm key suffix Argo CD reads a group/Kind from: group_Kind.
func configMapKey(key string) string { return strings.Replace(key, "/", "_", 1) }

// configMap renders the argocd-cm data that installs the customizations (docs/gitops.md).
func configMap(cs []customization) (string, error) {
	var b bytes.Buffer
	b.WriteString("# Generated from deploy/argocd/resource_customizations by tests/argocd (argocd-lua configmap).\n")
	b.WriteString("# Merge into the argocd-cm ConfigMap of your Argo CD installation.\n")
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: argocd\n  labels:\n    app.kubernetes.io/part-of: argocd\ndata:\n")
	block := func(key, value string) {
		fmt.Fprintf(&b, "  %s: |\n", key)
		for _, line := range strings.Split(strings.TrimRight(value, "\n"), "\n") {
			if line == "" {
				b.WriteString("\n")
			} else {
				fmt.Fprintf(&b, "    %s\n", line)
			}
		}
	}
	for _, c := range cs {
		if c.health != "" {
			block("resource.customizations.health."+configMapKey(c.key), c.health)
		}
		if c.discovery != "" {
			a, err := c.actionsYAML()
			if err != nil {
				return "", err
			}
			block("resource.customizations.actions."+configMapKey(c.key), a)
		}
	}
	return b.String(), nil
}

// overridesFromConfigMap reads the data of a rendered argocd-cm back, key by key, the way
// Argo CD's settings manager does for these two kinds of keys.
func overridesFromConfigMap(doc []byte) (map[string]appv1.ResourceOverride, error) {
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(doc, &cm); err != nil {
		return nil, err
	}
	out := map[string]appv1.ResourceOverride{}
	for k, v := range cm.Data {
		var field, groupKind string
		switch {
		case strings.HasPrefix(k, "resource.customizations.health."):
			field, groupKind = "health", strings.TrimPrefix(k, "resource.customizations.health.")
		case strings.HasPrefix(k, "resource.customizations.actions."):
			field, groupKind = "actions", strings.TrimPrefix(k, "resource.customizations.actions.")
		default:
			continue
		}
		key := strings.Replace(groupKind, "_", "/", 1)
		o := out[key]
		if field == "health" {
			o.HealthLua = v
		} else {
			o.Actions = v
		}
		out[key] = o
	}
	return out, nil
}
