// Package tied starts child processes that die with this process even when it is
// SIGKILLed: each gets a parent-death signal (PR_SET_PDEATHSIG) of the caller's choosing.
//
// The kernel sends that signal when the *thread* that forked the child exits, not the
// process. A child forked from an ordinary Go thread would get it whenever that thread
// happens to end (a goroutine that locked it and returned without unlocking, as
// harness/netns does when it cannot leave a namespace), and a thread we let exit would take
// with it every child some other code had forked from it. So children are forked from one
// locked thread that lives as long as the process: started at first use, never ended. It is
// the package's only process-wide state, and it holds nothing but that thread.
package tied
