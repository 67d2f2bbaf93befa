# Step 5: a paused instance sends nothing until an operator resumes it.
package sendguard.pause

paused if input.instance.paused == true
