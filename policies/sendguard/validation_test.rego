package sendguard.validation_test

import data.sendguard.validation

test_shipped_data_is_valid if count(validation.errors) == 0

test_throttle_above_block if {
	validation.errors == {"/risk/throttle_threshold: 80 is above /risk/block_threshold 70: nothing would ever be throttled"} with data.sendguard.config.risk.throttle_threshold as 80
}

test_throttle_equal_to_block_is_valid if {
	count(validation.errors) == 0 with data.sendguard.config.risk.throttle_threshold as 70
}

test_allowed_must_be_known if {
	validation.errors == {`/purposes/allowed: "newsletter" is not in /purposes/known: it would answer message_purpose_required`} with data.sendguard.config.purposes.allowed as ["transactional", "newsletter"]
}
