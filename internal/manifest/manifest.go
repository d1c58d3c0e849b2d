// Package manifest reads the objects of a rendered Helm manifest: multi-document YAML as helm
// stores it in a release, with "---" separators, "# Source:" comments and empty documents.
package manifest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Objects returns the objects of manifest in their order, skipping empty documents. A List
// document (kind List, or any kind ending in List that has items) gives its items in its
// place, as the API server's clients apply them. Whole numbers decode as int64, as in objects
// read from the API, so that unstructured's Nested* accessors read them.
func Objects(manifest string) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifest)))
	var out []*unstructured.Unstructured
	for doc := 1; ; doc++ {
		data, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("manifest document %d: %w", doc, err)
		}
		var obj map[string]any
		if err := utilyaml.Unmarshal(data, &obj); err != nil {
			return nil, fmt.Errorf("manifest document %d: %w", doc, err)
		}
		if len(obj) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		if !strings.HasSuffix(u.GetKind(), "List") || !u.IsList() {
			out = append(out, u)
			continue
		}
		items, err := u.ToList()
		if err != nil {
			return nil, fmt.Errorf("manifest document %d: %w", doc, err)
		}
		for i := range items.Items {
			out = append(out, &items.Items[i])
		}
	}
}
