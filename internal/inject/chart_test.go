package inject

import (
	"encoding/json"
	"os"
	"testing"

	"sigs.k8s.io/yaml"
)

// The chart's defaults and the injector's must agree: the chart passes
// images explicitly, but `sendguard inject -f` without flags uses these.
func TestChartDefaultsMatchInjector(t *testing.T) {
	raw, err := os.ReadFile("../../charts/sendguard/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		EnvoyImage struct{ Repository, Tag string } `json:"envoyImage"`
		Injector   struct {
			ConfigMap string `json:"configMap"`
		} `json:"injector"`
	}
	if err := yaml.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	d := Options{}.Defaults()
	if got := v.EnvoyImage.Repository + ":" + v.EnvoyImage.Tag; got != d.EnvoyImage {
		t.Errorf("chart envoyImage = %q, injector default %q", got, d.EnvoyImage)
	}
	if v.Injector.ConfigMap != d.ConfigMap {
		t.Errorf("chart injector.configMap = %q, injector default %q", v.Injector.ConfigMap, d.ConfigMap)
	}
	schema, err := os.ReadFile("../../charts/sendguard/values.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(schema) {
		t.Errorf("values.schema.json is not JSON")
	}
}
