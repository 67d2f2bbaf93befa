# Step 5: a paused instance sends nothing until an operator resumes it.

# METADATA
# scope: package
# schemas:
#   - input: schema.input
#   - data.sendguard.config: schema.sendguard.config
package sendguard.pause

paused if input.instance.paused == true
