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
# input.signals.segment_lead is the model's reading of the message's parts
# read alone (its paragraphs and its last line, risk.Segments): the largest
# lead of a violating class over transactional in any one of them, in
# percent. At or above model.segment_block_at it holds the score at
# block_threshold, at or above model.segment_throttle_at at
# throttle_threshold: an ad in the last paragraph or a P.S. of a real
# notice is a campaign though the notice around it reads as transactional.
# Both lines are optional; without them the signal counts for nothing.
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

# breakdown is each signal's contribution to the score, for operators,
# `sendguard check` and tests: the message's own signals and its purpose
# (content), and the content model's (model).
breakdown := object.union(content, {"model": model_points})

# content is the contributions of the message's own signals and its
# declared purpose: the counted signals, transactional evidence as a
# deduction, and the rest. It is a rule of its own, apart from the model's
# points, because the engine keeps each rule's value for the input fields
# it reads: a new message whose content signals were seen before, with new
# model probabilities, pays only for the model's part (and the reverse).
content := object.union(counted, {
	"transactional": 0 - counted.transactional,
	"caps": data.sendguard.config.risk.weights.caps * to_number(input.signals.caps_ratio_pct >= data.sendguard.config.risk.caps_ratio_pct),
	"promo_with_call_to_action": promo_with_call_to_action,
	"purpose": purpose_weight,
})

# counted is each signal that scores per occurrence: its count, up to its
# cap, times its weight. One comprehension rather than a function per
# signal: a first-seen input pays OPA's evaluation (the decision memo holds
# the answers it has seen), and a function call costs several times the
# arithmetic it wraps.
counted := {name: points |
	some name, n in occurrences
	points := min([n, data.sendguard.config.risk.caps[name]]) * data.sendguard.config.risk.weights[name]
}

# occurrences is how many times each signal counts: links other than
# shorteners, exclamation marks and emoji beyond the free ones. It names
# each input signal it reads, and no other (length is not one): the engine
# memoises decisions on exactly the input fields the policies reference, so
# `s := input.signals` would key the memo on every signal, message length
# included.
occurrences := {
	"promo_terms": input.signals.promo_terms,
	"calls_to_action": input.signals.calls_to_action,
	"discount_codes": input.signals.discount_codes,
	"prize_claims": input.signals.prize_claims,
	"cold_outreach": input.signals.cold_outreach,
	"political": input.signals.political,
	"shortener_links": input.signals.shortener_links,
	"links": max([0, input.signals.links - input.signals.shortener_links]),
	"exclamations": max([0, input.signals.exclamations - data.sendguard.config.risk.exclamations_free]),
	"emoji": max([0, input.signals.emoji - data.sendguard.config.risk.emoji_free]),
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

model_block if input.signals.segment_lead >= data.sendguard.config.model.segment_block_at

# model_throttle is a class at or above its throttle line
# (model.throttle_at, optional): the model leans that way without being
# sure, so the send is slowed rather than blocked or let through at full
# speed.
default model_throttle := false

model_throttle if {
	some c, p in model_probabilities
	p >= data.sendguard.config.model.throttle_at[c]
}

model_throttle if input.signals.segment_lead >= data.sendguard.config.model.segment_throttle_at

default model_floor := 0

model_floor := data.sendguard.config.risk.block_threshold if model_block

model_floor := data.sendguard.config.risk.throttle_threshold if {
	model_throttle
	not model_block
}

# score is the sum of breakdown, held at model_floor at least and 100 at
# most.
score := min([100, max([model_floor, content_points + model_points])])

content_points := sum([v | some v in content])

default block := false

block if score >= data.sendguard.config.risk.block_threshold

default throttle := false

throttle if score >= data.sendguard.config.risk.throttle_threshold
