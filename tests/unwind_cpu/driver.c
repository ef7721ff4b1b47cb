/* Calls the patched function (altcfi_fn, from the generated .S) once, with every argument register zero so that
 * a fixture's conditional branches on them take the same path on every run.  Used by tests/unwind_cpu.rs. */
extern void altcfi_fn(long, long, long, long, long, long);

int main(void) {
	altcfi_fn(0, 0, 0, 0, 0, 0);
	return 0;
}
