// The kernel's x86 instruction decoder as objtool calls it, for tests/decoder_kernel.rs.
//
// Built at test time against a kernel source tree, exactly as tools/objtool/arch/x86/decode.c builds it: that file
// includes tools/arch/x86/lib/inat.c and insn.c (with `unlikely` defined away), and inat.c includes inat-tables.c,
// which tools/objtool/arch/x86/Build generates with
//     awk -f tools/arch/x86/tools/gen-insn-attr-x86.awk tools/arch/x86/lib/x86-opcode-map.txt
// The include path is objtool's (tools/include, tools/arch/x86/include/uapi, tools/arch/x86/include) plus the
// directory of the generated inat-tables.c.
//
// objtool's arch_decode_instruction() calls insn_decode(&ins, sec->data->d_buf + offset, sec->sh.sh_size - offset,
// INSN_MODE_64) and reports "can't decode instruction" when it returns < 0; otherwise the instruction is ins.length
// bytes long. This program answers that question for byte sequences read from stdin (binary, little endian):
//
//   kinsn one     records [u8 n][n bytes]: the bytes are the rest of a section; writes one byte per record, the
//                 length, or 0 where objtool would report "can't decode instruction"; then one more byte, the
//                 vex_prefix.nbytes of the instruction (objtool models only instructions without one).
//   kinsn sweep   records [u32 n][n bytes]: a whole section, swept from offset 0 as objtool's decode_instructions()
//                 does; writes the length of every instruction, then 0xff at the end of the section or 0 where the
//                 sweep stops on an undecodable instruction.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define unlikely(cond) (cond)
#include <asm/insn.h>
#include "inat.c"
#include "insn.c"

static int read_all(void *buf, size_t n)
{
	return fread(buf, 1, n, stdin) == n;
}

int main(int argc, char **argv)
{
	static unsigned char out[1 << 16];
	size_t nout = 0;
	int sweep;

	if (argc != 2 || (strcmp(argv[1], "one") && strcmp(argv[1], "sweep"))) {
		fprintf(stderr, "usage: kinsn one|sweep < records > answers\n");
		return 2;
	}
	sweep = !strcmp(argv[1], "sweep");
#define EMIT(b)                                                                                                        \
	do {                                                                                                           \
		out[nout++] = (unsigned char)(b);                                                                      \
		if (nout == sizeof(out)) {                                                                             \
			fwrite(out, 1, nout, stdout);                                                                  \
			nout = 0;                                                                                      \
		}                                                                                                      \
	} while (0)
	for (;;) {
		struct insn insn;
		if (!sweep) {
			unsigned char n, buf[256];
			if (!read_all(&n, 1))
				break;
			if (!read_all(buf, n))
				return 1;
			if (insn_decode(&insn, buf, n, INSN_MODE_64) < 0) {
				EMIT(0);
				EMIT(0);
			} else {
				EMIT(insn.length);
				EMIT(insn.vex_prefix.nbytes);
			}
		} else {
			unsigned int n;
			unsigned long offset;
			unsigned char *buf;
			if (!read_all(&n, 4))
				break;
			buf = malloc(n ? n : 1);
			if (!buf || !read_all(buf, n))
				return 1;
			for (offset = 0; offset < n; offset += insn.length) {
				if (insn_decode(&insn, buf + offset, n - offset, INSN_MODE_64) < 0) {
					EMIT(0);
					break;
				}
				EMIT(insn.length);
			}
			if (offset >= n)
				EMIT(0xff);
			free(buf);
		}
	}
	fwrite(out, 1, nout, stdout);
	return 0;
}
