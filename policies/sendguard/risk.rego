# Step 9: the content risk score, 0 to 100, from signals Go computes
# (input.signals), the declared purpose, and weights and thresholds kept as
# data (data.sendguard.config.risk). Each signal adds its weight per
# occurrence, up to its cap; transactional evidence (an order, invoice,
# booking or ticket number, a one-time code) subtracts, so a real receipt
# that mentions a discount passes.
#
# The content model's class probabilities (input.signals.p_promotional,
# p_cold_outreach, p_political, p_scam: percent, in 5-point steps) add
# data.sendguard.config.model.weights[class] × (p - p_transactional) / 100
# each, when positive. A class at or
# above its model.block_at holds the score at block_threshold whatever else:
# transactional evidence lowers the score of otherwise clean text, it never
# cancels a likely campaign, cold pitch, election appeal or scam. A class at
# or above its model.throttle_at (below the block line) holds the score at
# throttle_threshold at least: the send is slowed.
#
# A score at or above block_threshold answers policy_violation; at or above
# throttle_threshold the send is held to the instance's slow lane
# (sending_throttled when that lane is spent).

# METADATA
# scope: package
# schemas:
#   - input: schema.input
#   - data.sendguard.config: schema.sendguard.config
package sendguard.risk

counted(n, name) := min([n, data.sendguard.config.risk.caps[name]]) * data.sendguard.config.risk.weights[name]

# breakdown is each signal's contribution to the score, for operators,
# `sendguard check` and tests.
breakdown := {
	"promo_terms": counted(s.promo_terms, "promo_terms"),
	"calls_to_action": counted(s.calls_to_action, "calls_to_action"),
	"discount_codes": counted(s.discount_codes, "discount_codes"),
	"prize_claims": counted(s.prize_claims, "prize_claims"),
	"cold_outreach": counted(s.cold_outreach, "cold_outreach"),
	"political": counted(s.political, "political"),
	"shortener_links": counted(s.shortener_links, "shortener_links"),
	"links": counted(max([0, s.links - s.shortener_links]), "links"),
	"caps": c.weights.caps * to_number(s.caps_ratio_pct >= c.caps_ratio_pct),
	"exclamations": counted(max([0, s.exclamations - c.exclamations_free]), "exclamations"),
	"emoji": counted(max([0, s.emoji - c.emoji_free]), "emoji"),
	"percentages": counted(s.percentages, "percentages"),
	"promo_with_call_to_action": promo_with_call_to_action,
	"transactional": 0 - counted(s.transactional, "transactional"),
	"purpose": purpose_weight,
	"model": model_points,
} if {
	c := data.sendguard.config.risk
	s := signals
}

# signals names each input signal the score reads, and no other (length
# is not one): the engine memoises decisions on exactly the input fields the
# policies reference, so `s := input.signals` would key the memo on every
# signal, message length included.
signals := {
	"promo_terms": input.signals.promo_terms,
	"calls_to_action": input.signals.calls_to_action,
	"discount_codes": input.signals.discount_codes,
	"prize_claims": input.signals.prize_claims,
	"cold_outreach": input.signals.cold_outreach,
	"political": input.signals.political,
	"shortener_links": input.signals.shortener_links,
	"links": input.signals.links,
	"caps_ratio_pct": input.signals.caps_ratio_pct,
	"exclamations": input.signals.exclamations,
	"emoji": input.signals.emoji,
	"percentages": input.signals.percentages,
	"transactional": input.signals.transactional,
}

# An offer with a call to action is a campaign, whatever each scores alone.
default promo_with_call_to_action := 0

promo_with_call_to_action := data.sendguard.config.risk.promo_with_call_to_action if {
	input.signals.promo_terms + input.signals.discount_codes > 0
	input.signals.calls_to_action > 0
}

# A one-time code has no business carrying a link.
default purpose_weight := 0

purpose_weight := data.sendguard.config.risk.authentication_link_weight if {
	lower(trim_space(input.purpose)) == "authentication"
	input.signals.links > 0
}

# model_probabilities names each model signal the score reads (not
# p_transactional), for the same memo reason as signals.
model_probabilities := {
	"promotional": input.signals.p_promotional,
	"cold_outreach": input.signals.p_cold_outreach,
	"political": input.signals.p_political,
	"scam": input.signals.p_scam,
}

# model_points is each class's weighted lead over the transactional
# probability, added up: a class the model finds no likelier than a
# legitimate message adds nothing, so an unsure model cannot turn one weak
# native signal ("Track your shipment here: bit.ly/…") into a block.
model_points := round(sum([x |
	some c, p in model_probabilities
	x := max([0, p - input.signals.p_transactional]) * data.sendguard.config.model.weights[c]
]) / 100)

# model_block is a class at or above its block line.
default model_block := false

model_block if {
	some c, p in model_probabilities
	p >= data.sendguard.config.model.block_at[c]
}

# model_throttle is a class at or above its throttle line
# (model.throttle_at, optional): the model leans that way without being
# sure, so the send is slowed rather than blocked or let through at full
# speed.
default model_throttle := false

model_throttle if {
	some c, p in model_probabilities
	p >= data.sendguard.config.model.throttle_at[c]
}

default model_floor := 0

model_floor := data.sendguard.config.risk.block_threshold if model_block

model_floor := data.sendguard.config.risk.throttle_threshold if {
	model_throttle
	not model_block
}

score := min([100, max([model_floor, sum([v | some v in breakdown])])])

default block := false

block if score >= data.sendguard.config.risk.block_threshold

default throttle := false

throttle if score >= data.sendguard.config.risk.throttle_threshold
