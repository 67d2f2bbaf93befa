package sendguard.risk_test

import data.sendguard.risk

quiet := {
	"promo_terms": 0, "calls_to_action": 0, "discount_codes": 0, "prize_claims": 0, "cold_outreach": 0, "political": 0,
	"transactional": 0, "percentages": 0, "shortener_links": 0, "links": 0, "caps_ratio_pct": 0, "exclamations": 0, "emoji": 0, "length": 34,
	"p_transactional": 100, "p_promotional": 0, "p_cold_outreach": 0, "p_political": 0, "p_scam": 0,
	"segment_lead": 0,
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

# A class adds its weight (90 by default) times its lead over the
# transactional probability, / 100.
test_model_probability_adds if {
	# A lead of 40 over p_transactional, 150 points at 100 %, under the
	# block line (50).
	inp := with_signals({"p_transactional": 5, "p_promotional": 45})
	risk.breakdown.model == 60 with input as inp
	risk.score == 60 with input as inp
	risk.throttle with input as inp
	not risk.block with input as inp
}

# An unsure model adds nothing: a class no likelier than a legitimate
# message does not turn one weak native signal into a block ("Track your
# shipment here: bit.ly/…": a shortener, 30, and a model torn between
# transactional and scam). Its scam probability past the throttle line
# (25) slows it, no more.
test_an_unsure_model_adds_nothing if {
	inp := with_signals({"p_transactional": 40, "p_promotional": 25, "p_scam": 35, "shortener_links": 1, "links": 1})
	risk.breakdown.model == 0 with input as inp
	risk.score == 30 with input as inp with data.sendguard.config.model.throttle_at as {}
	not risk.throttle with input as inp with data.sendguard.config.model.throttle_at as {}
	risk.score == 50 with input as inp
	risk.throttle with input as inp
	not risk.block with input as inp
}

test_model_classes_add_up if {
	# 45% promotional and 40% scam against 30% transactional: leads of 15
	# and 10, 150 points each at 100 %.
	inp := with_signals({"p_transactional": 30, "p_promotional": 45, "p_scam": 40})
	risk.breakdown.model == 38 with input as inp
	risk.score == 38 with input as inp with data.sendguard.config.model.throttle_at as {}
	not risk.throttle with input as inp with data.sendguard.config.model.throttle_at as {}

	# Both classes are past their throttle line (25 %): slowed.
	risk.score == 50 with input as inp
	risk.throttle with input as inp
	not risk.block with input as inp
}

test_model_and_native_signals_add if {
	inp := with_signals({"p_transactional": 35, "p_promotional": 45, "promo_terms": 2})
	risk.score == 45 with input as inp with data.sendguard.config.model.throttle_at as {}
	not risk.block with input as inp
}

# Transactional evidence lowers a moderate model probability ...
test_transactional_evidence_lowers_a_moderate_probability if {
	inp := with_signals({"p_transactional": 25, "p_promotional": 45, "transactional": 2})
	risk.score == 0 with input as inp with data.sendguard.config.model.throttle_at as {}
	not risk.throttle with input as inp with data.sendguard.config.model.throttle_at as {}

	# ... down to the throttle line, not below it.
	risk.score == 50 with input as inp
}

# ... but never cancels one at or above the class's block line: an upsell
# riding on a receipt ("order #4412 shipped! reply YES for 20% off") stays
# blocked.
test_transactional_evidence_never_cancels_the_block_line if {
	inp := with_signals({"p_transactional": 20, "p_promotional": 80, "transactional": 2})
	risk.model_block with input as inp
	risk.score == 70 with input as inp
	risk.block with input as inp
}

test_the_block_line_is_inclusive if {
	risk.block with input as with_signals({"p_transactional": 30, "p_promotional": 50, "transactional": 2})
	not risk.block with input as with_signals({"p_transactional": 35, "p_promotional": 45, "transactional": 2})
}

# Every class blocks at half (the model finds it likelier than all the
# rest together), transactional evidence or not.
test_every_class_blocks_at_its_line if {
	every c in ["p_promotional", "p_cold_outreach", "p_political", "p_scam"] {
		risk.block with input as with_signals({"p_transactional": 40, c: 50, "transactional": 2})
		not risk.block with input as with_signals({"p_transactional": 40, c: 45, "transactional": 2})
	}
}

test_model_weights_and_block_lines_are_data if {
	inp := with_signals({"p_transactional": 55, "p_political": 45})
	not risk.block with input as inp
	risk.block with input as inp with data.sendguard.config.model.block_at.political as 45
	risk.score == 0 with input as inp with data.sendguard.config.model.weights.political as 0 with data.sendguard.config.model.throttle_at.political as 101
}

# Without a model (no p_ signals at all) the score is the native one.
test_no_model_signals if {
	inp := {"signals": object.remove(quiet, ["p_transactional", "p_promotional", "p_cold_outreach", "p_political", "p_scam"]), "purpose": "transactional"}
	risk.score == 15 with input as object.union(inp, {"signals": {"promo_terms": 1}})
	risk.breakdown.model == 0 with input as inp
}

# A class at its throttle line, below its block line, slows the send even
# when transactional evidence would take the score to 0; below the line
# the score is the usual one.
test_throttle_line_slows if {
	inp := with_signals({"p_transactional": 70, "p_promotional": 25, "transactional": 2})
	risk.model_throttle with input as inp
	risk.score == 50 with input as inp
	risk.throttle with input as inp
	not risk.block with input as inp
	below := with_signals({"p_transactional": 80, "p_promotional": 20, "transactional": 2})
	risk.score == 0 with input as below
	not risk.throttle with input as below
}

test_the_block_line_wins_over_the_throttle_line if {
	inp := with_signals({"p_transactional": 20, "p_scam": 65})
	risk.model_throttle with input as inp
	risk.score == 70 with input as inp
	risk.block with input as inp
}

test_throttle_lines_are_data if {
	inp := with_signals({"p_transactional": 55, "p_political": 45, "transactional": 2})
	risk.throttle with input as inp
	not risk.throttle with input as inp with data.sendguard.config.model.throttle_at as {}
}

# An ad in the P.S. of a real notice: the whole message reads as
# transactional, its last paragraph alone as promotional.
test_segment_lead_at_the_block_line_blocks if {
	inp := with_signals({"transactional": 2, "segment_lead": 50})
	risk.score == 70 with input as inp
	risk.block with input as inp
}

test_segment_lead_between_the_lines_slows if {
	inp := with_signals({"transactional": 1, "segment_lead": 45})
	risk.score == 50 with input as inp
	risk.throttle with input as inp
	not risk.block with input as inp
}

test_segment_lead_below_the_throttle_line_counts_nothing if {
	inp := with_signals({"segment_lead": 25})
	risk.score == 0 with input as inp
	not risk.throttle with input as inp
}

test_segment_lines_come_from_data if {
	inp := with_signals({"segment_lead": 50})
	not risk.block with input as inp with data.sendguard.config.model.segment_block_at as 55
	risk.throttle with input as inp with data.sendguard.config.model.segment_block_at as 55
	risk.block with input as with_signals({"segment_lead": 35}) with data.sendguard.config.model.segment_block_at as 35
}

# A config from before the signal has no segment lines: the signal counts
# for nothing, at any value.
test_segment_lead_without_its_lines_counts_nothing if {
	inp := with_signals({"segment_lead": 100})
	cfg := object.remove(data.sendguard.config.model, ["segment_block_at", "segment_throttle_at"])
	risk.score == 0 with input as inp with data.sendguard.config.model as cfg
	not risk.throttle with input as inp with data.sendguard.config.model as cfg
}
