package sendguard.purpose_test

import data.sendguard.purpose

test_normalized if purpose.normalized == "transactional" with input as {"purpose": "  TransActional "}

test_absent_is_unknown if not purpose.known with input as {}

test_empty_is_unknown if not purpose.known with input as {"purpose": " "}

test_unknown if not purpose.known with input as {"purpose": "newsletter"}

test_every_allowed_is_known_and_allowed if {
	every p in ["transactional", "operational", "support", "internal_team", "authentication"] {
		purpose.known with input as {"purpose": p}
		purpose.allowed with input as {"purpose": p}
	}
}

test_forbidden_are_known_not_allowed if {
	every p in ["marketing", "promotion", "cold_outreach", "bulk_campaign", "political"] {
		purpose.known with input as {"purpose": p}
		not purpose.allowed with input as {"purpose": p}
	}
}

test_absent_normalizes_to_empty if purpose.normalized == "" with input as {}

test_non_string_is_absent if purpose.normalized == "" with input as {"purpose": 7}
