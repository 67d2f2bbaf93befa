# Step 9: the content risk score, 0 to 100, from signals Go computes
# (input.signals) and weights kept as data (data.sendguard.config.risk):
#
#   promo_terms      weights.promo_term each, at most promo_term_cap of them
#   shortener_links  weights.shortener_link each
#   links            weights.link for each link that is not a shortener
#   caps             weights.caps once, when caps_ratio_pct >= caps_ratio_pct
#   exclamations     weights.exclamation each beyond exclamations_free
#   emoji            weights.emoji each beyond emoji_free
#
# A score at or above block_threshold answers policy_violation.
package sendguard.risk

# breakdown is each signal's contribution to the score, for operators,
# `sendguard check` and tests.
breakdown := {
	"promo_terms": min([s.promo_terms, c.promo_term_cap]) * w.promo_term,
	"shortener_links": s.shortener_links * w.shortener_link,
	"links": max([0, s.links - s.shortener_links]) * w.link,
	"caps": caps,
	"exclamations": max([0, s.exclamations - c.exclamations_free]) * w.exclamation,
	"emoji": max([0, s.emoji - c.emoji_free]) * w.emoji,
} if {
	c := data.sendguard.config.risk
	w := c.weights
	s := input.signals
	caps := w.caps * to_number(s.caps_ratio_pct >= c.caps_ratio_pct)
}

score := min([100, sum([v | some v in breakdown])])

block if score >= data.sendguard.config.risk.block_threshold
