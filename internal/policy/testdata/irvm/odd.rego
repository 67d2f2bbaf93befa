# Deliberately odd policies for TestVMOddPolicies: each rule named in the
# test is a query of its own, evaluated by topdown and by the IR VM on every
# input of inputs.json. They cover what sendguard's own policies do not:
# conflicts, built-in errors, undefined, else chains, comprehensions of every
# kind, every, some ... in, with, functions, partial rules, number forms.
package odd

import rego.v1

# eval_conflict_error when input.a and input.b differ and both are set.
conflict := input.a if input.a
conflict := input.b if input.b

# eval_conflict_error for a partial object with two values at one key.
pobj[k] := v if {
	some k, v in input.obj
}

pobj["fixed"] := input.fixed if input.fixed

# eval_builtin_error (strict): a string that is not a number, division by
# zero, an operand of the wrong type at run time.
builtin_error := to_number(input.s)

divided := input.n / input.d

typed := concat(",", input.list)

# Undefined: a missing key, a false comparison, a failed unification.
undefined_key := input.missing.deeper

undefined_cmp := 1 if input.n > 100

# else chains, with a default.
default grade := "none"

grade := "high" if input.n >= 90
else := "mid" if input.n >= 50
else := "low" if input.n >= 0

# Comprehensions: array, set and object, nested, over arrays, sets and
# objects of the input.
doubled := [y | some x in input.list; y := x * 2]

distinct := {lower(s) | some s in input.words}

lengths := {w: count(w) | some w in input.words}

pairs := [[i, x] | some i, x in input.list; x > 1]

nested := {k: [y | some y in v; y != null] | some k, v in input.obj; is_array(v)}

# every, on arrays, objects and sets, and on an empty domain.
all_positive if every x in input.list { x > 0 }

all_words_short if every w in input.words { count(w) < 6 }

every_value_set if every _, v in input.obj { v != null }

# some ... in, with a key, and membership.
has_two if 2 in input.list

key_of_two contains i if some i, 2 in input.list

members contains k if some k, _ in input.obj

# with: replace input, a path in it, and a rule's value seen through it.
with_input := g if {
	g := grade with input as {"n": 95}
}

with_path := g if {
	g := grade with input.n as 55
}

base := input.n + 1

with_through := [b, c] if {
	b := base with input.n as 41
	c := base
}

# A function with several bodies and an else.
kind(x) := "num" if is_number(x)
else := "str" if is_string(x)
else := "other"

kinds := [kind(x) | some x in input.mixed]

# Numbers: big integers, floats, exponents, integer division, rounding.
big := input.n * 1000000000000

floaty := input.n / 3

rounded := round(input.n / 4)

summed := sum(input.list)

biggest := max(input.list)

smallest := min(input.list)

# Strings with multilingual text: trim, lower and upper case (Turkish
# dotted I included), sprintf, split, indexes.
text := {
	"lower": lower(input.t),
	"upper": upper(input.t),
	"trim": trim_space(input.t),
	"count": count(input.t),
	"split": split(input.t, " "),
	"sprintf": sprintf("%s=%d", [input.t, count(input.t)]),
	"index": indexof(input.t, "é"),
}

# Object and set built-ins.
union := object.union(input.obj, {"extra": true})

got := object.get(input.obj, "x", "fallback")

keys := {k | some k, _ in input.obj}

# A decision like sendguard's, with a deny function and an else chain.
result := deny("paused") if input.paused
else := deny("no_purpose") if not input.purpose
else := {"allow": true, "error": "", "score": count(input.words)}

deny(code) := {"allow": false, "error": code, "score": 0}
