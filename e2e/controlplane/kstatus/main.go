// kstatus: what sigs.k8s.io/cli-utils' kstatus library (the one Flux's health
// checks, `kubectl wait`-style tooling and kpt use) computes for live objects.
//
//	kubectl get scalingpolicy web -o json | kstatus
//	kubectl get scalingpolicies -o json | kstatus      (a List: one line per item)
//
// Prints one JSON line per object: {"name": ..., "status": "Current" |
// "InProgress" | "Failed" | "Terminating" | ..., "message": ...}.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	var obj unstructured.Unstructured
	if err := obj.UnmarshalJSON(data); err != nil {
		fail("stdin is not a Kubernetes object in JSON: %v", err)
	}
	items := []unstructured.Unstructured{obj}
	if obj.IsList() {
		list, err := obj.ToList()
		if err != nil {
			fail("stdin: %v", err)
		}
		items = list.Items
	}
	out := json.NewEncoder(os.Stdout)
	for i := range items {
		res, err := status.Compute(&items[i])
		if err != nil {
			fail("%s: %v", items[i].GetName(), err)
		}
		_ = out.Encode(map[string]string{
			"name":    items[i].GetName(),
			"status":  res.Status.String(),
			"message": res.Message,
		})
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kstatus: "+format+"\n", args...)
	os.Exit(1)
}
