# Cross-field rules on the policy data that its JSON Schema
# (schemas/sendguard/config.json) cannot state. sendguard refuses policies
# whose errors set is not empty: at `sendguard config check`, at start-up
# and at a SIGHUP reload (which then keeps the running policies). Each
# message starts with the JSON pointer of the field at fault.

# METADATA
# scope: package
# schemas:
#   - data.sendguard.config: schema.sendguard.config
package sendguard.validation

errors contains msg if {
	r := data.sendguard.config.risk
	r.throttle_threshold > r.block_threshold
	msg := sprintf("/risk/throttle_threshold: %d is above /risk/block_threshold %d: nothing would ever be throttled", [r.throttle_threshold, r.block_threshold])
}

errors contains msg if {
	some p in data.sendguard.config.purposes.allowed
	not p in data.sendguard.config.purposes.known
	msg := sprintf("/purposes/allowed: %q is not in /purposes/known: it would answer message_purpose_required", [p])
}
