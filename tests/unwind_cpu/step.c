/* Single-steps one function of a child program and prints, for every instruction executed inside it, the
 * registers and the stack words from %rsp up to the return address slot.  Used by tests/unwind_cpu.rs.
 *
 * usage: step FUNC_ADDR FUNC_LEN PROGRAM
 * output: "entry RSP RBP" once, then per step "step RIP RSP RBP W0 W1 ..." (words at RSP, RSP+8, ... up to and
 * including the entry RSP), then "done".  All numbers are hex.  Exit status 0 on success; 3, after a line
 * "signal SIG RIP" (RIP of the last completed step), when the child got a signal before the function returned (SIG 0: the stack grew more than 64 KiB, a runaway recursion). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what) {
	fprintf(stderr, "step: %s: %s\n", what, strerror(errno));
	exit(2);
}

int main(int argc, char **argv) {
	if (argc != 4) {
		fprintf(stderr, "usage: step FUNC_ADDR FUNC_LEN PROGRAM\n");
		return 2;
	}
	unsigned long fn = strtoul(argv[1], 0, 16), len = strtoul(argv[2], 0, 16);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		if (ptrace(PTRACE_TRACEME, 0, 0, 0) < 0)
			die("PTRACE_TRACEME");
		execl(argv[3], argv[3], (char *)0);
		die("exec");
	}
	int st;
	if (waitpid(pid, &st, 0) < 0 || !WIFSTOPPED(st))
		die("child did not stop at exec");
	/* A breakpoint on the function's first byte. */
	errno = 0;
	long orig = ptrace(PTRACE_PEEKTEXT, pid, (void *)fn, 0);
	if (errno)
		die("PTRACE_PEEKTEXT");
	if (ptrace(PTRACE_POKETEXT, pid, (void *)fn, (void *)((orig & ~0xffL) | 0xcc)) < 0)
		die("PTRACE_POKETEXT");
	if (ptrace(PTRACE_CONT, pid, 0, 0) < 0)
		die("PTRACE_CONT");
	if (waitpid(pid, &st, 0) < 0 || !WIFSTOPPED(st) || WSTOPSIG(st) != SIGTRAP) {
		fprintf(stderr, "step: child never reached the function (status %#x)\n", st);
		return 2;
	}
	struct user_regs_struct r;
	if (ptrace(PTRACE_GETREGS, pid, 0, &r) < 0)
		die("PTRACE_GETREGS");
	if (r.rip != fn + 1) {
		fprintf(stderr, "step: stopped at %#llx, not the breakpoint\n", r.rip);
		return 2;
	}
	if (ptrace(PTRACE_POKETEXT, pid, (void *)fn, (void *)orig) < 0)
		die("PTRACE_POKETEXT restore");
	r.rip = fn;
	if (ptrace(PTRACE_SETREGS, pid, 0, &r) < 0)
		die("PTRACE_SETREGS");
	unsigned long entry_rsp = r.rsp;
	errno = 0;
	unsigned long ret = ptrace(PTRACE_PEEKDATA, pid, (void *)entry_rsp, 0);
	if (errno)
		die("PTRACE_PEEKDATA");
	printf("entry %lx %llx\n", entry_rsp, r.rbp);
	for (int n = 0;; n++) {
		if (n > 10000) {
			fprintf(stderr, "step: the function did not return\n");
			return 2;
		}
		if (r.rsp < entry_rsp && entry_rsp - r.rsp > 65536) {
			/* Runaway recursion (a variant that calls through a register the driver left pointing at the
			 * function): report it like a fault, with the steps so far. */
			printf("signal 0 %llx\n", r.rip);
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return 3;
		}
		if (r.rip >= fn && r.rip < fn + len) {
			printf("step %llx %llx %llx", r.rip, r.rsp, r.rbp);
			for (unsigned long a = r.rsp; a <= entry_rsp; a += 8) {
				errno = 0;
				long w = ptrace(PTRACE_PEEKDATA, pid, (void *)a, 0);
				if (errno)
					die("PTRACE_PEEKDATA stack");
				printf(" %lx", (unsigned long)w);
			}
			printf("\n");
		}
		if (r.rip == ret && r.rsp == entry_rsp + 8)
			break;
		if (ptrace(PTRACE_SINGLESTEP, pid, 0, 0) < 0)
			die("PTRACE_SINGLESTEP");
		if (waitpid(pid, &st, 0) < 0)
			die("waitpid");
		if (!WIFSTOPPED(st)) {
			fprintf(stderr, "step: child ended inside the function (status %#x)\n", st);
			return 2;
		}
		if (WSTOPSIG(st) != SIGTRAP) {
			/* A fault (e.g. a privileged instruction, or a ret to a wrong address in a fixture that leaves the
			 * stack unbalanced): the steps so far are still good. */
			printf("signal %d %llx\n", WSTOPSIG(st), r.rip);
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return 3;
		}
		if (ptrace(PTRACE_GETREGS, pid, 0, &r) < 0)
			die("PTRACE_GETREGS");
	}
	printf("done\n");
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return 0;
}
