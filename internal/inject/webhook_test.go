package inject

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// review loads the recorded AdmissionReview and lets edit change its
// request (as generic JSON) before re-encoding it.
func review(t *testing.T, edit func(req map[string]any)) []byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/admission/pod-create.json")
	if err != nil {
		t.Fatal(err)
	}
	if edit == nil {
		return raw
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m["request"].(map[string]any))
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func annotations(req map[string]any) map[string]any {
	return req["object"].(map[string]any)["metadata"].(map[string]any)["annotations"].(map[string]any)
}

func post(t *testing.T, h http.Handler, body []byte) (*httptest.ResponseRecorder, *admissionv1.AdmissionResponse) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/inject", bytes.NewReader(body)))
	if rec.Code != http.StatusOK {
		return rec, nil
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("response is not an AdmissionReview: %v\n%s", err, rec.Body)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil {
		t.Fatalf("response %s: want an admission.k8s.io/v1 AdmissionReview with a response", rec.Body)
	}
	return rec, out.Response
}

// The patch, applied to the object exactly as the API server sent it,
// gives the pod Pod returns; fields unknown to k8s.io/api survive.
func TestWebhookPatchEqualsPod(t *testing.T) {
	h := Webhook(testOptions(""), nil, quiet())
	body := review(t, nil)
	_, resp := post(t, h, body)
	if resp == nil || !resp.Allowed || resp.UID != "705ab4f5-6393-11e8-b7cc-42010a800002" {
		t.Fatalf("response = %+v, want allowed with the request's uid", resp)
	}
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch || len(resp.Patch) == 0 {
		t.Fatalf("response has no JSONPatch: %+v", resp)
	}
	var in admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &in); err != nil {
		t.Fatal(err)
	}
	patch, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatalf("decode patch: %v\n%s", err, resp.Patch)
	}
	patchedRaw, err := patch.Apply(in.Request.Object.Raw)
	if err != nil {
		t.Fatalf("apply patch: %v\n%s", err, resp.Patch)
	}
	if !bytes.Contains(patchedRaw, []byte(`"aFieldFromANewerAPIServer":{"kept":true}`)) {
		t.Errorf("the patch dropped a field unknown to k8s.io/api")
	}
	var got, orig corev1.Pod
	if err := json.Unmarshal(patchedRaw, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(in.Request.Object.Raw, &orig); err != nil {
		t.Fatal(err)
	}
	want, ok, err := Pod(&orig, "messaging", testOptions(""))
	if err != nil || !ok {
		t.Fatalf("Pod() = %v, %v", ok, err)
	}
	// Compared as generic JSON: the patch library re-encodes raw fields
	// such as managedFields without their spaces.
	if d := cmp.Diff(generic(t, want), generic(t, &got)); d != "" {
		t.Errorf("patched pod differs from Pod() (-want +got):\n%s", d)
	}
	if got.Spec.InitContainers[1].Ports[0].Name != PortName || got.Spec.InitContainers[1].Args[1] == "" {
		t.Errorf("Envoy container %+v: want port %s and a config", got.Spec.InitContainers[1], PortName)
	}

	// The patched pod sent again (a retry, a second webhook pass under
	// reinvocationPolicy: IfNeeded) is left alone.
	again := review(t, func(req map[string]any) {
		var obj map[string]any
		json.Unmarshal(patchedRaw, &obj)
		req["object"] = obj
	})
	if _, resp := post(t, h, again); resp == nil || !resp.Allowed || resp.Patch != nil {
		t.Errorf("second pass = %+v, want allowed without a patch", resp)
	}
}

func TestWebhookAllowsWithoutPatch(t *testing.T) {
	h := Webhook(testOptions(""), nil, quiet())
	for name, edit := range map[string]func(map[string]any){
		"unannotated": func(r map[string]any) { delete(annotations(r), AnnotationInject) },
		"opted out":   func(r map[string]any) { annotations(r)[AnnotationInject] = "false" },
		"kube-system": func(r map[string]any) {
			r["namespace"] = "kube-system"
			r["object"].(map[string]any)["metadata"].(map[string]any)["namespace"] = "kube-system"
		},
		"injector namespace": func(r map[string]any) {
			r["namespace"] = "sendguard-system"
			delete(r["object"].(map[string]any)["metadata"].(map[string]any), "namespace")
		},
		"already injected": func(r map[string]any) { annotations(r)[AnnotationStatus] = "0.1.0" },
		"update":           func(r map[string]any) { r["operation"] = "UPDATE" },
		"not a pod": func(r map[string]any) {
			r["resource"] = map[string]any{"group": "apps", "version": "v1", "resource": "deployments"}
		},
		"subresource": func(r map[string]any) { r["subResource"] = "status" },
	} {
		t.Run(name, func(t *testing.T) {
			rec, resp := post(t, h, review(t, edit))
			if resp == nil || !resp.Allowed || resp.Patch != nil || resp.PatchType != nil {
				t.Errorf("response = %d %s, want allowed without a patch", rec.Code, rec.Body)
			}
		})
	}
}

// A pod that asks for sendguard and cannot have it is refused, with why.
func TestWebhookDeniesBadAnnotations(t *testing.T) {
	h := Webhook(testOptions(""), nil, quiet())
	for name, c := range map[string]struct {
		edit func(map[string]any)
		want string
	}{
		"unknown port": {func(r map[string]any) { annotations(r)[AnnotationPort] = "grpc" }, `no container port named "grpc"`},
		"bad value":    {func(r map[string]any) { annotations(r)[AnnotationInject] = "yes" }, `sendguard.io/inject: "yes"`},
		"not a pod":    {func(r map[string]any) { r["object"] = map[string]any{"spec": "nonsense"} }, "decode pod"},
		"no object":    {func(r map[string]any) { delete(r, "object") }, "no pod"},
	} {
		t.Run(name, func(t *testing.T) {
			rec, resp := post(t, h, review(t, c.edit))
			if resp == nil || resp.Allowed || resp.Patch != nil || resp.Result == nil || resp.Result.Code != 400 || !strings.Contains(resp.Result.Message, c.want) {
				t.Errorf("response = %d %s, want denied 400 mentioning %q", rec.Code, rec.Body, c.want)
			}
		})
	}
}

func TestWebhookRefusesMalformed(t *testing.T) {
	h := Webhook(testOptions(""), nil, quiet())
	for name, body := range map[string]string{
		"empty":      "",
		"truncated":  `{"kind":"AdmissionReview",`,
		"array":      `[]`,
		"no request": `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}`,
		"v1beta1":    strings.Replace(string(review(t, nil)), "admission.k8s.io/v1", "admission.k8s.io/v1beta1", 1),
		"wrong type": `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":7}}`,
		"too large":  `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"` + strings.Repeat("x", maxReview) + `"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/inject", strings.NewReader(body)))
			if rec.Code != http.StatusBadRequest && rec.Code != http.StatusRequestEntityTooLarge {
				t.Errorf("POST %.40q = %d %s, want 400 or 413", body, rec.Code, rec.Body)
			}
		})
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/inject", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET = %d, want 405", rec.Code)
	}
}

// Every prefix of a real review gets an answer, never a panic.
func TestWebhookTruncatedNeverPanics(t *testing.T) {
	h := Webhook(testOptions(""), nil, quiet())
	body := review(t, nil)
	for n := 0; n < len(body); n += 7 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/inject", bytes.NewReader(body[:n])))
		if rec.Code != http.StatusBadRequest {
			t.Fatalf("prefix of %d bytes = %d, want 400", n, rec.Code)
		}
	}
}

// The handler holds no state: many pods at once, including multilingual
// names and annotations, each get their own correct patch.
func TestWebhookConcurrent(t *testing.T) {
	h := Webhook(testOptions(""), nil, quiet())
	names := []string{"مرسل", "प्रेषक", "gönderici", "sender-😀", "e\u0301metteur"}
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := names[i%len(names)]
			body := review(t, func(r map[string]any) {
				r["object"].(map[string]any)["metadata"].(map[string]any)["labels"].(map[string]any)["owner"] = name
				if i%2 == 1 {
					delete(annotations(r), AnnotationInject)
				}
			})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/inject", bytes.NewReader(body)))
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil || !out.Response.Allowed {
				t.Errorf("pod %d (%s): %d %s", i, name, rec.Code, rec.Body)
				return
			}
			if hasPatch := out.Response.Patch != nil; hasPatch != (i%2 == 0) {
				t.Errorf("pod %d: patch %v, want %v", i, hasPatch, i%2 == 0)
			}
		}(i)
	}
	wg.Wait()
}

func generic(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var g any
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}
