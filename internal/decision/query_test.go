package decision

import (
	"context"
	"testing"

	"github.com/sendguard/sendguard/internal/catalog"
)

func TestContractInQuery(t *testing.T) {
	tests := []struct {
		q    string
		want bool
	}{
		{"", false},
		{"x=1", false},
		{"trace=phone&note=message", false},
		{"phone_number=%2B966500000000", false},
		{"phones=1", false},
		{"phone=%2B966500000000", true},
		{"phone", true},
		{"PHONE=1", true},
		{"Phone=1", true},
		{"x=1&phone=1", true},
		{"x=1;phone=1", true},
		{"ph%6Fne=1", true},
		{"phone%5B%5D=1", true},
		{"phone[]=1", true},
		{"phone[0]=1", true},
		{"phone+=1", true},
		{"+phone=1", true},
		{"phone.=1", true},
		{"instance_id=inst_theirs", true},
		{"instance-id=inst_theirs", true},
		{"instanceId=inst_theirs", true},
		{"message=spam", true},
		{"message[phone]=1", true},
		{"message_purpose=marketing", true},
		{"message.purpose=marketing", true},
		{"message%20purpose=marketing", true},
		{"me%C5%BFsage=x", true}, // long s: "meſsage" folds to "message"
		{"ph%zzone=1", false},
	}
	for _, tc := range tests {
		if got := contractInQuery(tc.q); got != tc.want {
			t.Errorf("contractInQuery(%q) = %v, want %v", tc.q, got, tc.want)
		}
	}
}

// TestDecideQuery: a send whose query string holds a contract field is
// refused before the key is read, and consumes nothing; another query is
// not the decision's business.
func TestDecideQuery(t *testing.T) {
	f := newFixture(t)
	body := []byte(`{"instance_id":"shop","phone":"+966501234567","message":"Your order has shipped.","message_purpose":"transactional"}`)
	for _, tc := range []struct {
		auth, q string
		want    catalog.Code
	}{
		{keyDemo, "phone=%2B966500000000", catalog.InvalidRequestQuery},
		{"", "message_purpose=marketing", catalog.InvalidRequestQuery},
		{keyDemo, "x=1", ""},
		{"", "x=1", catalog.InvalidAPIKey},
	} {
		before := f.usage(t)
		res, err := f.d.Decide(context.Background(), Request{Method: "POST", Path: "/api/send-message", Query: tc.q, Authorization: tc.auth, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		if res.Code != tc.want || res.Allowed != (tc.want == "") {
			t.Errorf("Decide(query %q) = %v %v, want %v", tc.q, res.Code, res.Allowed, tc.want)
		}
		if after := f.usage(t); tc.want != "" && after != before {
			t.Errorf("Decide(query %q) consumed quota: %v, was %v", tc.q, after, before)
		}
	}
	// Not a send: the query is the upstream's own.
	res, err := f.d.Decide(context.Background(), Request{Method: "POST", Path: "/api/contacts", Query: "phone=%2B966500000000"})
	if err != nil || !res.Allowed || res.Send {
		t.Errorf("Decide(POST /api/contacts?phone=…) = %+v, %v; want allowed untouched", res, err)
	}
}
