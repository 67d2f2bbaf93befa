package sendguard.pause_test

import data.sendguard.pause

test_paused if pause.paused with input as {"instance": {"paused": true}}

test_not_paused if not pause.paused with input as {"instance": {"paused": false}}

test_missing_flag_is_not_paused if not pause.paused with input as {"instance": {}}
