package sendguard.risk_test

import data.sendguard.risk

quiet := {"promo_terms": 0, "shortener_links": 0, "links": 0, "caps_ratio_pct": 0, "exclamations": 0, "emoji": 0, "length": 34}

test_receipt_scores_zero if risk.score == 0 with input as {"signals": quiet}

test_one_promo_term_passes if {
	risk.score == 20 with input as {"signals": object.union(quiet, {"promo_terms": 1})}
	not risk.block with input as {"signals": object.union(quiet, {"promo_terms": 1})}
}

test_promo_terms_are_capped if risk.score == 60 with input as {"signals": object.union(quiet, {"promo_terms": 9})}

# The documented example ("WIN BIG!!! 50% OFF ... bit.ly/deal"): promo terms
# capped at 3 (60) + one shortener (30) = 90; 26% capitals and 3 exclamation
# marks stay under their thresholds.
test_spam_blocks if {
	sig := {"promo_terms": 5, "shortener_links": 1, "links": 1, "caps_ratio_pct": 26, "exclamations": 3, "emoji": 0, "length": 72}
	risk.score == 90 with input as {"signals": sig}
	risk.block with input as {"signals": sig}
}

test_score_is_capped_at_100 if {
	sig := {"promo_terms": 9, "shortener_links": 3, "links": 3, "caps_ratio_pct": 90, "exclamations": 10, "emoji": 10, "length": 72}
	risk.score == 100 with input as {"signals": sig}
}

test_threshold_is_data if {
	sig := object.union(quiet, {"promo_terms": 1})
	risk.block with input as {"signals": sig} with data.sendguard.config.risk.block_threshold as 20
}

test_plain_link_is_cheap if risk.score == 5 with input as {"signals": object.union(quiet, {"links": 1})}

test_shouting_counts_at_the_threshold if {
	risk.breakdown.caps == 10 with input as {"signals": object.union(quiet, {"caps_ratio_pct": 30})}
	risk.breakdown.caps == 0 with input as {"signals": object.union(quiet, {"caps_ratio_pct": 29})}
}

test_exclamations_and_emoji_beyond_the_free_ones if {
	sig := object.union(quiet, {"exclamations": 5, "emoji": 5})
	risk.breakdown.exclamations == 10 with input as {"signals": sig}
	risk.breakdown.emoji == 10 with input as {"signals": sig}
	risk.score == 20 with input as {"signals": sig}
}

test_breakdown_names_each_contribution if {
	sig := {"promo_terms": 5, "shortener_links": 1, "links": 1, "caps_ratio_pct": 26, "exclamations": 3, "emoji": 0, "length": 72}
	risk.breakdown == {"promo_terms": 60, "shortener_links": 30, "links": 0, "caps": 0, "exclamations": 0, "emoji": 0} with input as {"signals": sig}
}
