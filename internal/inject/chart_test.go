package inject

import (
	"encoding/json"
	"os"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/sendguard/sendguard/internal/version"
)

// The chart's defaults and the injector's must agree: the chart passes
// images explicitly, but `sendguard inject -f` without flags uses these. And
// the chart's default image is the one `make image` builds:
// version.ImageRepository:version.Version, the version `sendguard version`
// prints.
func TestChartDefaultsMatchInjector(t *testing.T) {
	raw, err := os.ReadFile("../../charts/sendguard/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	chartRaw, err := os.ReadFile("../../charts/sendguard/Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(chartRaw, &chart); err != nil {
		t.Fatal(err)
	}
	if chart.AppVersion != version.Version {
		t.Errorf("Chart.yaml appVersion = %q, version.Version %q (the image `make image` tags)", chart.AppVersion, version.Version)
	}
	var v struct {
		Image      struct{ Repository, Tag string } `json:"image"`
		EnvoyImage struct{ Repository, Tag string } `json:"envoyImage"`
		Injector   struct {
			ConfigMap string `json:"configMap"`
		} `json:"injector"`
	}
	if err := yaml.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if v.Image.Repository != version.ImageRepository || v.Image.Tag != "" {
		t.Errorf("chart image = %q tag %q, want %q with the tag empty (appVersion)", v.Image.Repository, v.Image.Tag, version.ImageRepository)
	}
	d := Options{}.Defaults()
	if want := v.Image.Repository + ":" + chart.AppVersion; d.SendguardImage != want || d.Version != chart.AppVersion {
		t.Errorf("injector default image %q version %q, want the chart's %q and %q", d.SendguardImage, d.Version, want, chart.AppVersion)
	}
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
