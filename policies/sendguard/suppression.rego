# Step 8: a recipient who opted out or was blocked for this instance is never
# messaged. Go looks the recipient up (by instance and E.164 number) and
# passes the answer in.

# METADATA
# scope: package
# schemas:
#   - input: schema.input
#   - data.sendguard.config: schema.sendguard.config
package sendguard.suppression

suppressed if input.recipient.suppressed == true
