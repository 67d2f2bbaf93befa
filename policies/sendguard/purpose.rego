# Steps 6 and 7: message_purpose must be one of the known values (trimmed,
# case-insensitive), and one of the allowed ones. The lists are data:
# data.sendguard.config.purposes.known and .allowed.

# METADATA
# scope: package
# schemas:
#   - input: schema.input
#   - data.sendguard.config: schema.sendguard.config
package sendguard.purpose

# normalized is the declared purpose, trimmed and lower-cased; "" when the
# request had no string message_purpose.
default normalized := ""

normalized := lower(trim_space(input.purpose)) if is_string(input.purpose)

known if normalized in data.sendguard.config.purposes.known

allowed if normalized in data.sendguard.config.purposes.allowed
