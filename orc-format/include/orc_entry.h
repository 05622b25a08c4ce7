/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * orcwalk arm64 ORC entry, as kernel C declares it. Mirrors orc-format/src/entry.rs; the test
 * tests/c_layout.rs compares the two through bindgen, field by field and bit by bit.
 * The layout is mainline LoongArch's struct orc_entry (arch/loongarch/include/asm/orc_types.h).
 */
#ifndef ORCWALK_ORC_ENTRY_H
#define ORCWALK_ORC_ENTRY_H

#define ORC_REG_UNDEFINED		0
#define ORC_REG_PREV_SP			1
#define ORC_REG_SP			2
#define ORC_REG_FP			3

#define ORC_TYPE_UNDEFINED		0
#define ORC_TYPE_END_OF_STACK		1
#define ORC_TYPE_CALL			2
#define ORC_TYPE_REGS			3
#define ORC_TYPE_REGS_PARTIAL		4

/* Format id: FormatId::CURRENT in orc-format/src/format_id.rs. */
#define ORCWALK_ORC_FORMAT_VERSION	1
#define ORCWALK_ORC_LAYOUT_HASH		0x8f295a7b316fe623ULL

#define ORC_LOOKUP_BLOCK_SIZE		256

struct orc_entry {
	signed short	sp_offset;
	signed short	fp_offset;
	signed short	ra_offset;
	unsigned int	sp_reg:4;
	unsigned int	fp_reg:4;
	unsigned int	ra_reg:4;
	unsigned int	type:3;
	unsigned int	signal:1;
} __attribute__((__packed__));

#endif /* ORCWALK_ORC_ENTRY_H */
