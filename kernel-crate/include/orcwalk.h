/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * orcwalk C ABI (kernel-crate/src/ffi.rs). tests/c_layout.rs checks every struct against the
 * Rust definitions through bindgen.
 */
#ifndef ORCWALK_H
#define ORCWALK_H

#ifdef __KERNEL__
#include <linux/types.h>
#else
#include <stdbool.h>
#endif

typedef bool (*orcwalk_consume_fn)(void *cookie, unsigned long long pc);
/* Non-faulting 8-byte read (copy_from_kernel_nofault). */
typedef bool (*orcwalk_read_fn)(void *ctx, unsigned long long addr, unsigned long long *out);
/* Original return address behind a trampoline; which: 0 fgraph return_to_handler, 1 kretprobe. */
typedef bool (*orcwalk_recover_fn)(void *ctx, unsigned int which, unsigned long long fp,
				   unsigned long long pc, unsigned long long *out);

/* The function [*start, *end) holding pc (kallsyms_lookup_size_offset). */
typedef bool (*orcwalk_function_fn)(void *ctx, unsigned long long pc, unsigned long long *start,
				    unsigned long long *end);

/* Where a module's text section of this name (name_len bytes, no NUL) and size was loaded. */
typedef bool (*orcwalk_section_fn)(void *ctx, const unsigned char *name, unsigned int name_len,
				   unsigned long long size, unsigned long long *addr);

struct orcwalk_table {
	const unsigned char *ip;		/* .orc_unwind_ip (self-relative i32) */
	const unsigned char *orc;		/* .orc_unwind (8-byte entries) */
	unsigned int num_entries;
	unsigned int lookup_blocks;
	const unsigned int *lookup;		/* lookup_blocks + 1 words, or NULL */
	unsigned long long lookup_base;
	unsigned long long ip_addr;		/* address slot 0 stands for: ip itself for the
						 * linked section, file address + KASLR offset */
};

/* A module's text and its table (placed by orcwalk_place_module_table when it loaded). */
struct orcwalk_module_text {
	struct orcwalk_table table;
	unsigned long long text_start, text_end;
};

/*
 * The module whose text holds pc, with its table, kept while its text can be on a stack (in the
 * module); NULL when pc is in no module with a table.
 */
typedef const struct orcwalk_module_text *(*orcwalk_module_fn)(void *ctx, unsigned long long pc);

/* A table file (orc-format build) parsed by orcwalk_parse_table_file. */
struct orcwalk_table_file {
	struct orcwalk_table table;
	unsigned char image_id[20];
	unsigned int image_id_len;
	unsigned int image_id_kind;		/* 0 none, 1 GNU build-id, 2 text hash */
	unsigned int proven;			/* pass ORCWALK_FLAG_ROWS_PROVEN when 1 */
	unsigned int error;			/* orcwalk_table_error_name(error) */
};

struct orcwalk_layout {
	unsigned long long pt_regs_size, x29, x30, sp, pc, pstate, stackframe;
	unsigned int meta_records;
	unsigned int va_bits;
};

enum orcwalk_stack_kind {
	ORCWALK_STACK_TASK, ORCWALK_STACK_IRQ, ORCWALK_STACK_OVERFLOW,
	ORCWALK_STACK_SDEI_NORMAL, ORCWALK_STACK_SDEI_CRITICAL, ORCWALK_STACK_EFI,
};

struct orcwalk_stack {
	unsigned long long low, high;
	unsigned int kind;
	unsigned int pad;
};

/* orcwalk_context.flags: two witnesses for every frame; the table's rows were proven along
 * control flow (orc-format marks its table files so; single-witness frames need it). */
#define ORCWALK_FLAG_STRICT		1u
#define ORCWALK_FLAG_ROWS_PROVEN	2u

/* ftrace_caller's frame: the return address of its call to the tracer callback (0: none), the
 * frame's size, its first frame record's offset, and x29/LR/sp's offsets in its ftrace_regs. */
struct orcwalk_ftrace {
	unsigned long long callsite, size, record, fp, lr, sp;
};

/*
 * A cache of ORC lookups the caller owns (orcwalk::OrcCache): 16 bytes a slot, a pc and the
 * answer for it. Valid for one set of tables: empty it (memset 0xff) when a table is added or
 * removed (a module loaded or unloaded). One walk at a time may use it.
 */
#define ORCWALK_CACHE_SLOTS 512
struct orcwalk_cache {
	unsigned long long slots[ORCWALK_CACHE_SLOTS][2];
};

struct orcwalk_context {
	struct orcwalk_table table;
	struct orcwalk_layout layout;
	unsigned long long text_start, text_end, entry_start, entry_end;
	unsigned long long fgraph_return, kretprobe_trampoline;
	const struct orcwalk_stack *stacks;
	unsigned int nr_stacks;
	unsigned int task_stack_only;
	unsigned int start_regs;
	unsigned int mainline;
	unsigned long long pc, sp, fp, lr;
	unsigned int max_frames;
	unsigned int flags;			/* ORCWALK_FLAG_* */
	orcwalk_read_fn read;
	orcwalk_recover_fn recover;		/* may be NULL */
	void *ctx;
	orcwalk_function_fn function;		/* may be NULL: no call-site callee check */
	struct orcwalk_ftrace ftrace;
	orcwalk_module_fn module;		/* may be NULL: module code is then unreliable */
	struct orcwalk_cache *cache;		/* may be NULL: every lookup in the tables */
};

/* reason: 0 reliable, else orcwalk::Reason discriminant + 1 (see kernel-crate/src/verdict.rs). */
struct orcwalk_verdict {
	unsigned int reason;
	unsigned int pad;
	unsigned long long pc;
	unsigned long long fp;
};

/* 0 when the table is usable; -EINVAL otherwise. Call once per table (boot, module load). */
int orcwalk_validate_table(const struct orcwalk_table *table);

/*
 * Parses and validates a table file of len bytes for an image running slide bytes above its
 * link address (KASLR). 0 when well formed; -ENOEXEC (not a table of this format) or -EINVAL,
 * out->error saying why. The caller must compare out->image_id with the running image's id.
 */
int orcwalk_parse_table_file(const unsigned char *bytes, unsigned long long len,
			     unsigned long long slide, struct orcwalk_table_file *out);
const char *orcwalk_table_error_name(unsigned int error);
/* The name of orcwalk_verdict.reason (0: "reliable"). */
const char *orcwalk_reason_name(unsigned int reason);

/*
 * A module's table: the .orcwalk_module section of its .ko (orc-format build-module). At load,
 * size the buffers with orcwalk_module_table_entries(), then place it where the loader put the
 * text sections: 4 bytes (ip) and 8 bytes (orc) an entry, kept while the module's text can be on
 * a stack. 0 and *out a validated table; -ENOEXEC (not such a table) or -EINVAL (malformed, rows
 * not proven, nothing loaded, sections overlapping or more than 2 GiB apart).
 */
int orcwalk_module_table_entries(const unsigned char *bytes, unsigned long long len,
				 unsigned int *entries);
int orcwalk_place_module_table(const unsigned char *bytes, unsigned long long len,
			       orcwalk_section_fn section, void *ctx, unsigned char *ip,
			       unsigned char *orc, unsigned int capacity, struct orcwalk_table *out);

/* 0 when reliable, -EINVAL otherwise; out (may be NULL) receives the reason and place. */
int orcwalk_stack_walk_reliable(orcwalk_consume_fn consume, void *cookie,
				const struct orcwalk_context *ctx, struct orcwalk_verdict *out);

#endif
