# The policy half of a send decision: steps 5 to 9 of the documented order.
# sendguard evaluates data.sendguard.decision.result once per send request:
#
#   {"allow": bool, "error": "" or a documented code, "risk_score": 0-100,
#    "purpose": the normalised declared purpose or "",
#    "throttle": true when allowed content is risky enough for the slow lane}
#
# The first failing step answers; the limiter (steps 10 to 12) runs in Go
# only when this allows. Change a step in its own package or its data;
# change the order only here.

# METADATA
# scope: package
# schemas:
#   - input: schema.input
#   - data.sendguard.config: schema.sendguard.config
package sendguard.decision

import data.sendguard.pause
import data.sendguard.purpose
import data.sendguard.risk
import data.sendguard.suppression

result := deny("instance_paused_for_review") if pause.paused

else := deny("message_purpose_required") if not purpose.known

else := deny("message_purpose_not_allowed") if not purpose.allowed

else := deny("recipient_suppressed") if suppression.suppressed

else := deny("policy_violation") if risk.block

else := {"allow": true, "error": "", "risk_score": risk.score, "purpose": purpose.normalized, "throttle": risk.throttle}

deny(code) := {"allow": false, "error": code, "risk_score": risk.score, "purpose": purpose.normalized, "throttle": false}
