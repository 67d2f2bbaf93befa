package sendguard.suppression_test

import data.sendguard.suppression

test_suppressed if suppression.suppressed with input as {"recipient": {"suppressed": true}}

test_not_suppressed if not suppression.suppressed with input as {"recipient": {"suppressed": false}}
