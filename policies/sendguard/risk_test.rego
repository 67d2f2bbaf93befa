package sendguard.risk_test

import data.sendguard.risk

quiet := {
	"promo_terms": 0, "calls_to_action": 0, "discount_codes": 0, "prize_claims": 0, "cold_outreach": 0, "political": 0,
	"transactional": 0, "percentages": 0, "shortener_links": 0, "links": 0, "caps_ratio_pct": 0, "exclamations": 0, "emoji": 0, "length": 34,
}

with_signals(extra) := {"signals": object.union(quiet, extra), "purpose": "transactional"}

test_receipt_scores_zero if risk.score == 0 with input as with_signals({})

test_one_promo_term_passes if {
	risk.score == 15 with input as with_signals({"promo_terms": 1})
	not risk.throttle with input as with_signals({"promo_terms": 1})
	not risk.block with input as with_signals({"promo_terms": 1})
}

test_caps_per_signal if risk.score == 60 with input as with_signals({"promo_terms": 9})

test_prize_scam_blocks if {
	inp := with_signals({"prize_claims": 2, "shortener_links": 1})
	risk.score == 100 with input as inp
	risk.block with input as inp
}

test_political_campaigning_blocks if risk.block with input as with_signals({"political": 2})

test_cold_outreach_blocks if risk.block with input as with_signals({"cold_outreach": 3})

# "YOU HAVE WON A PRIZE!!!!!": two prize phrases, shouting, two exclamation
# marks beyond the free three.
test_prize_shout_is_ninety if {
	inp := with_signals({"prize_claims": 2, "caps_ratio_pct": 100, "exclamations": 5})
	risk.score == 90 with input as inp
}

test_offer_with_a_call_to_action_is_a_campaign if {
	inp := with_signals({"promo_terms": 1, "calls_to_action": 1})
	risk.breakdown.promo_with_call_to_action == 25 with input as inp
	risk.score == 55 with input as inp
}

test_transactional_evidence_lowers if {
	# "Your order #3310 with the 50% discount has shipped"
	risk.score == 0 with input as with_signals({"promo_terms": 1, "transactional": 2})
}

test_score_never_negative if risk.score == 0 with input as with_signals({"transactional": 2})

test_middle_scores_throttle if {
	inp := with_signals({"promo_terms": 3, "links": 1})
	risk.score == 50 with input as inp
	risk.throttle with input as inp
	not risk.block with input as inp
}

test_authentication_with_a_link if {
	inp := {"signals": object.union(quiet, {"links": 1}), "purpose": " Authentication "}
	risk.breakdown.purpose == 20 with input as inp
	risk.score == 25 with input as inp
}

test_shouting_counts_at_the_threshold if {
	risk.breakdown.caps == 10 with input as with_signals({"caps_ratio_pct": 30})
	risk.breakdown.caps == 0 with input as with_signals({"caps_ratio_pct": 29})
}

test_exclamations_and_emoji_beyond_the_free_ones if {
	inp := with_signals({"exclamations": 5, "emoji": 5})
	risk.breakdown.exclamations == 10 with input as inp
	risk.breakdown.emoji == 10 with input as inp
}

test_thresholds_are_data if {
	risk.block with input as with_signals({"promo_terms": 1}) with data.sendguard.config.risk.block_threshold as 15
}
