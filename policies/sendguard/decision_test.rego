package sendguard.decision_test

import data.sendguard.decision

quiet := {
	"promo_terms": 0, "calls_to_action": 0, "discount_codes": 0, "prize_claims": 0, "cold_outreach": 0, "political": 0,
	"transactional": 0, "percentages": 0, "shortener_links": 0, "links": 0, "caps_ratio_pct": 0, "exclamations": 0, "emoji": 0, "length": 30,
}

# "YOU HAVE WON A PRIZE!!!!!"
spam := object.union(quiet, {"prize_claims": 2, "caps_ratio_pct": 100, "exclamations": 5})

ok := {
	"instance": {"id": "inst_12345", "plan": "starter", "paused": false},
	"purpose": "Transactional",
	"recipient": {"phone": "+966501234567", "suppressed": false},
	"signals": quiet,
}

test_allow if {
	decision.result == {"allow": true, "error": "", "risk_score": 0, "purpose": "transactional", "throttle": false} with input as ok
}

test_paused_marketing_answers_paused_first if {
	inp := object.union(ok, {"instance": {"id": "i", "plan": "starter", "paused": true}, "purpose": "marketing", "signals": spam})
	decision.result.error == "instance_paused_for_review" with input as inp
}

test_missing_purpose_before_suppression if {
	inp := object.union(object.remove(ok, ["purpose"]), {"recipient": {"phone": "+1", "suppressed": true}})
	decision.result == {"allow": false, "error": "message_purpose_required", "risk_score": 0, "purpose": "", "throttle": false} with input as inp
}

test_unknown_purpose_is_required if {
	decision.result.error == "message_purpose_required" with input as object.union(ok, {"purpose": "newsletter"})
}

test_marketing_not_allowed_before_suppression if {
	inp := object.union(ok, {"purpose": "marketing", "recipient": {"phone": "+1", "suppressed": true}})
	decision.result.error == "message_purpose_not_allowed" with input as inp
}

test_suppressed_before_risk if {
	inp := object.union(ok, {"recipient": {"phone": "+1", "suppressed": true}, "signals": spam})
	decision.result.error == "recipient_suppressed" with input as inp
}

test_risky_content_is_a_violation_with_its_score if {
	decision.result == {"allow": false, "error": "policy_violation", "risk_score": 90, "purpose": "transactional", "throttle": false} with input as object.union(ok, {"signals": spam})
}

test_allowed_carries_a_nonzero_score if {
	inp := object.union(ok, {"signals": object.union(quiet, {"promo_terms": 1})})
	decision.result == {"allow": true, "error": "", "risk_score": 15, "purpose": "transactional", "throttle": false} with input as inp
}

test_risky_but_allowed_goes_to_the_slow_lane if {
	inp := object.union(ok, {"signals": object.union(quiet, {"promo_terms": 3, "links": 1})})
	decision.result == {"allow": true, "error": "", "risk_score": 50, "purpose": "transactional", "throttle": true} with input as inp
}
