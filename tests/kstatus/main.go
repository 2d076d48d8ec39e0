// Prints what kstatus (sigs.k8s.io/cli-utils pkg/kstatus/status, the library Flux and Helm 4's
// --wait judge with) computes for one object: JSON on stdin, `<status>\t<message>` on stdout.
package main

import (
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	// UnmarshalJSON keeps integers int64, as the API machinery (and kstatus) reads them.
	var u unstructured.Unstructured
	if err := u.UnmarshalJSON(raw); err != nil {
		fail(err)
	}
	res, err := status.Compute(&u)
	if err != nil {
		fail(err)
	}
	fmt.Printf("%s\t%s\n", res.Status, res.Message)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kstatus:", err)
	os.Exit(2)
}
