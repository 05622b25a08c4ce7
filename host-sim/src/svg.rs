//! `orcwalk-sim show DUMP --svg OUT.svg`: a picture of a walk, drawn from the same
//! [`ShowReport`] the text and the JSON come from.
//!
//! Each stack the dump records is a column, all to one scale, high addresses at the top (a
//! stack grows down); the memory the dump holds is shaded, and where the walk used only the top
//! of a stack the column breaks below what it used, saying how much is left out. Every frame
//! record lies where its frame pointer says, every `pt_regs` an exception frame was read from
//! where the walk found it, and the walk's steps are arrows from record to record, coloured by
//! the witness that proved the frame each one found. Labels beside the columns name each
//! frame's function and witness; the failing step of an unreliable walk ends in a red cross
//! with its reason. Hand-written SVG 1.1: no scripts, no external resources.

use std::fmt::Write as _;

use orcwalk::FrameKind;
use orcwalk::frame::Witness;

use crate::report::{DumpReport, Named, ShowReport, StackReport, VerdictReport};

const MARGIN: f64 = 20.0;
/// Column width, the gap between columns, the width given to labels.
const COL: f64 = 90.0;
const GAP: f64 = 170.0;
const LABELS: f64 = 470.0;
/// Label line height and the width of a character (DejaVu Sans Mono at 11 px).
const LINE: f64 = 15.0;
const CHAR: f64 = 6.7;
/// The tallest column, in pixels (no more than a byte a pixel).
const TALLEST: f64 = 640.0;
const HEADER: f64 = 128.0;
const FAIL: &str = "#c62828";

/// The colour, the words and the marker of a witness.
fn witness(w: Witness) -> (&'static str, &'static str, &'static str) {
    match w {
        Witness::Two => ("#2e7d32", "2 witnesses", "two"),
        Witness::FramePointer => ("#ef6c00", "1 witness (x29 chain)", "fp"),
        Witness::Orc => ("#6a1b9a", "1 witness (ORC row)", "orc"),
        Witness::Given => ("#616161", "start, given", "given"),
    }
}

/// `s` with the characters XML gives meaning to escaped.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

fn kib(bytes: u64) -> String {
    match bytes {
        b if b.is_multiple_of(1024) => format!("{} KiB", b / 1024),
        b if b > 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}

struct Column {
    stack: StackReport,
    x: f64,
    /// Labels to the left of the column (the first), else to the right.
    left: bool,
    /// The lowest address drawn: below it, down to the stack's low end, nothing the walk used
    /// (the column breaks there rather than draw kilobytes of nothing).
    shown_low: u64,
}

impl Column {
    fn broken(&self) -> bool {
        self.shown_low > self.stack.low.0
    }
}

/// A label beside a column: where it points, and its text as SVG `tspan`s.
struct Label {
    column: usize,
    at: f64,
    spans: String,
    chars: usize,
}

/// The picture of `report`'s walk, as an SVG document.
pub fn render(report: &ShowReport) -> Result<String, String> {
    let walk = report
        .walk
        .as_ref()
        .ok_or_else(|| format!("no walk to draw: {}", report.no_walk.as_deref().unwrap_or("no table")))?;
    let stacks: Vec<StackReport> = report.stacks.iter().copied().filter(|s| s.high.0 > s.low.0).collect();
    if stacks.is_empty() {
        return Err("the dump records no stack".into());
    }
    let stack_of = |addr: u64| stacks.iter().position(|s| s.low.0 <= addr && addr < s.high.0);
    let layout = &report.layout;

    // What lies on the stacks: each frame's record (16 bytes at its fp), the pt_regs each
    // exception frame was read from (the previous frame's record is its `stackframe`), the
    // task's final pt_regs at the end of a reliable kernel walk, the start's sp.
    let records: Vec<Option<u64>> = walk.frames.iter().map(|f| stack_of(f.fp.0).map(|_| f.fp.0)).collect();
    let mut regs: Vec<(u64, &str)> = Vec::new();
    for (k, f) in walk.frames.iter().enumerate().skip(1) {
        // (A user sample's exception frame comes from a signal frame, whose start the report
        // does not say: no box for it.)
        if f.kind == FrameKind::Exception
            && report.kernel
            && let Some(r) = walk.frames[k - 1].fp.0.checked_sub(layout.stackframe)
        {
            regs.push((r, "pt_regs"));
        }
    }
    if report.kernel && !matches!(walk.verdict, VerdictReport::Unreliable { .. }) {
        let task = stacks.iter().find(|s| s.kind == orcwalk::StackKind::Task);
        let final_regs = task.and_then(|t| t.high.0.checked_sub(layout.pt_regs_size));
        if let (Some(r), Some(last)) = (final_regs, walk.frames.last())
            && r.checked_add(layout.stackframe) == Some(last.fp.0)
        {
            regs.push((r, "final pt_regs"));
        }
    }
    let regs: Vec<(u64, &str)> = regs.into_iter().filter(|(r, _)| stack_of(*r).is_some()).collect();
    let sp = report.start.sp.0;
    let used: Vec<u64> = records.iter().flatten().copied().chain(regs.iter().map(|r| r.0)).chain([sp]).collect();

    // Columns in the order the walk first uses them, then the stacks it did not use.
    let mut order: Vec<usize> = Vec::new();
    for k in records.iter().flatten().filter_map(|&a| stack_of(a)).chain(stack_of(sp)).chain(0..stacks.len()) {
        if !order.contains(&k) {
            order.push(k);
        }
    }
    let mut columns = Vec::new();
    let mut x = MARGIN + LABELS;
    for (n, &k) in order.iter().enumerate() {
        let s = stacks[k];
        let lowest = used.iter().copied().filter(|&a| s.low.0 <= a && a < s.high.0).min();
        let shown_low = match lowest {
            // A little below the lowest thing drawn, unless that leaves little out.
            Some(a) => {
                let l = a.saturating_sub(64) & !63;
                if l.saturating_sub(s.low.0) < 512 { s.low.0 } else { l }
            }
            None => s.low.0.max(s.high.0.saturating_sub(256)),
        };
        columns.push(Column { stack: s, x, left: n == 0, shown_low });
        x += if n == 0 { COL + GAP } else { COL + LABELS + 40.0 };
    }
    let tallest = columns.iter().map(|c| c.stack.high.0 - c.shown_low).max().unwrap_or(1);
    let per_px = (tallest as f64 / TALLEST).max(1.0);
    // A tick every `unit` bytes: the smallest power of two at least 30 px apart.
    let unit = (4..=16).map(|b| 1u64 << b).find(|u| *u as f64 / per_px >= 30.0).unwrap_or(1 << 16);
    let top = MARGIN + HEADER + 34.0;
    let col_of = |addr: u64| columns.iter().position(|c| c.shown_low <= addr && addr < c.stack.high.0);
    let y = |c: usize, addr: u64| top + (columns[c].stack.high.0.saturating_sub(addr)) as f64 / per_px;

    let mut body = String::new();
    let mut bottom = top;
    // The stacks: outline, the dumped part shaded, ticks, bounds and name.
    for (c, col) in columns.iter().enumerate() {
        let s = col.stack;
        let h = (s.high.0 - col.shown_low) as f64 / per_px;
        let mid = col.x + COL / 2.0;
        let _ = write!(
            body,
            r##"<g class="stack"><text x="{mid:.1}" y="{:.1}" text-anchor="middle" font-weight="bold">{} stack, {}</text><text x="{mid:.1}" y="{:.1}" text-anchor="middle" fill="#757575" font-size="10">{:#x}</text>"##,
            top - 20.0,
            esc(stack_name(s)),
            kib(s.high.0 - s.low.0),
            top - 6.0,
            s.high
        );
        let _ = write!(
            body,
            r##"<rect x="{:.1}" y="{top:.1}" width="{COL}" height="{h:.1}" fill="#fafafa" stroke="#9e9e9e"/>"##,
            col.x
        );
        for r in report.regions.iter().filter(|r| !r.text) {
            let (lo, hi) = (r.start.0.max(col.shown_low), r.end.0.min(s.high.0));
            if lo < hi {
                let _ = write!(
                    body,
                    r##"<rect x="{:.1}" y="{:.1}" width="{COL}" height="{:.1}" fill="#e3f2fd"><title>in the dump: {:#x}..{:#x}</title></rect>"##,
                    col.x,
                    y(c, hi),
                    (hi - lo) as f64 / per_px,
                    r.start,
                    r.end
                );
            }
        }
        let tick = if col.left { col.x + COL } else { col.x - 5.0 };
        let mut at = s.high.0 - s.high.0 % unit;
        while at > col.shown_low {
            let _ = write!(
                body,
                r##"<line x1="{tick:.1}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#9e9e9e"/>"##,
                tick + 5.0,
                yy = y(c, at)
            );
            at -= unit;
        }
        let mut end = top + h;
        if col.broken() {
            // The break: a zigzag, what is left out, and the stack's low end.
            let (x0, z) = (col.x, end + 6.0);
            let _ = write!(
                body,
                r##"<path d="M{x0:.1},{end:.1} l15,6 l15,-6 l15,6 l15,-6 l15,6 l15,-6 M{x0:.1},{:.1} l15,6 l15,-6 l15,6 l15,-6 l15,6 l15,-6" fill="none" stroke="#9e9e9e"/><text x="{mid:.1}" y="{:.1}" text-anchor="middle" fill="#757575" font-size="10">{} not drawn</text><rect x="{x0:.1}" y="{:.1}" width="{COL}" height="10" fill="#fafafa" stroke="#9e9e9e"/>"##,
                z + 22.0,
                z + 16.0,
                kib(col.shown_low - s.low.0),
                z + 32.0
            );
            end = z + 42.0;
        }
        let _ = write!(
            body,
            r##"<text x="{mid:.1}" y="{:.1}" text-anchor="middle" fill="#757575" font-size="10">{:#x}</text></g>"##,
            end + 13.0,
            s.low
        );
        bottom = bottom.max(end + 16.0);
    }

    for (r, name) in &regs {
        if let Some(c) = col_of(*r) {
            let col = &columns[c];
            let (y0, y1) = (y(c, r + layout.pt_regs_size), y(c, *r));
            // Its name outside the column, on the side without labels.
            let (tx, anchor) = if col.left { (col.x + COL + 6.0, "start") } else { (col.x - 8.0, "end") };
            let _ = write!(
                body,
                r##"<g class="pt_regs"><rect x="{:.1}" y="{y0:.1}" width="{:.1}" height="{:.1}" fill="#ffe0b2" stroke="#ef6c00" stroke-dasharray="3 2"><title>{name} {r:#x}..{:#x}</title></rect><text x="{tx:.1}" y="{:.1}" text-anchor="{anchor}" fill="#bf360c" font-size="10">{name}</text></g>"##,
                col.x + 4.0,
                COL - 8.0,
                (y1 - y0).max(3.0),
                r + layout.pt_regs_size,
                (y0 + y1) / 2.0 + 4.0,
            );
        }
    }
    // Frame records, and where each frame's label points: its record's middle.
    let mut at: Vec<Option<(usize, f64)>> = Vec::new();
    for (k, f) in walk.frames.iter().enumerate() {
        let Some(c) = records[k].and_then(col_of) else {
            at.push(None);
            continue;
        };
        let (y0, y1) = (y(c, f.fp.0 + 16), y(c, f.fp.0));
        at.push(Some((c, (y0 + y1) / 2.0)));
        let _ = write!(
            body,
            r##"<rect class="record" x="{:.1}" y="{y0:.1}" width="{:.1}" height="{:.1}" fill="#616161"><title>#{k}: frame record at {:#x}</title></rect>"##,
            columns[c].x + 16.0,
            COL - 32.0,
            (y1 - y0).max(2.0),
            f.fp
        );
    }
    // The start's sp.
    if let Some(c) = col_of(sp) {
        let col = &columns[c];
        let (yy, tip, dir) = if col.left { (y(c, sp), col.x + COL, 1.0) } else { (y(c, sp), col.x, -1.0) };
        let _ = write!(
            body,
            r##"<g class="sp"><path d="M{tip:.1},{yy:.1} l{:.1},-5 v10 z" fill="#1565c0"/><text x="{:.1}" y="{:.1}" text-anchor="{}" fill="#1565c0" font-size="10">sp</text></g>"##,
            8.0 * dir,
            tip + 11.0 * dir,
            yy + 4.0,
            if col.left { "start" } else { "end" }
        );
    }
    // The walk's steps, each in the colour of the witness that proved the frame it found.
    for k in 1..walk.frames.len() {
        let (Some((c0, y0)), Some((c1, y1))) = (at[k - 1], at[k]) else { continue };
        let (color, _, marker) = witness(walk.frames[k].witness);
        if c0 == c1 {
            if (y0 - y1).abs() < 1.0 {
                continue;
            }
            let xx = columns[c0].x + COL / 2.0;
            let _ = write!(
                body,
                r##"<line class="step" x1="{xx:.1}" y1="{y0:.1}" x2="{xx:.1}" y2="{y1:.1}" stroke="{color}" stroke-width="2" marker-end="url(#{marker})"/>"##
            );
        } else {
            let (a, b) = (&columns[c0], &columns[c1]);
            let (x0, x1) = if a.x < b.x { (a.x + COL - 16.0, b.x + 16.0) } else { (a.x + 16.0, b.x + COL - 16.0) };
            let bend = (x1 - x0) / 2.0;
            let _ = write!(
                body,
                r##"<path class="step" d="M{x0:.1},{y0:.1} C{:.1},{y0:.1} {:.1},{y1:.1} {x1:.1},{y1:.1}" fill="none" stroke="{color}" stroke-width="2" marker-end="url(#{marker})"/>"##,
                x0 + bend,
                x1 - bend
            );
        }
    }

    // Labels: every frame at its record (a frame without one at the last place the walk had),
    // and the failed step.
    let mut labels: Vec<Label> = Vec::new();
    let mut last = col_of(sp).map(|c| (c, y(c, sp)));
    for (k, f) in walk.frames.iter().enumerate() {
        let place = at[k].or(last);
        last = place;
        let Some((column, yy)) = place else { continue };
        let (color, words, _) = witness(f.witness);
        let name = match (&f.function, report.sigreturn) {
            (Some(n), _) => n.clone(),
            (None, Some(t)) if t.at == f.pc => format!("{:#x} (signal-return trampoline)", f.pc),
            (None, _) => format!("{:#x}", f.pc),
        };
        // The source line by its file's name alone, to keep the label short (the path is in
        // the text and JSON output).
        let line = f
            .source
            .as_ref()
            .map_or(String::new(), |l| format!(" ({}:{})", l.file.rsplit('/').next().unwrap_or(&l.file), l.line));
        let mut tail = format!("{line} · {words}");
        let mut spans = format!(r##"<tspan font-weight="bold">#{k}</tspan> {}"##, esc(&name));
        if !line.is_empty() {
            let _ = write!(spans, r##"<tspan fill="#616161">{}</tspan>"##, esc(&line));
        }
        let _ = write!(spans, r##"<tspan fill="{color}"> · {}</tspan>"##, esc(words));
        let how = match f.kind {
            FrameKind::Exception if report.kernel => " · from pt_regs",
            FrameKind::Exception => " · from the signal frame",
            FrameKind::LinkRegister => " · from x30",
            FrameKind::Recovered => " · recovered from a trampoline",
            FrameKind::Start | FrameKind::Return => "",
        };
        if at[k].is_none() {
            let _ = write!(tail, " · fp {:#x}, no record", f.fp);
            let _ = write!(spans, r##"<tspan fill="#757575"> · fp {:#x}, no record</tspan>"##, f.fp);
        }
        tail.push_str(how);
        spans.push_str(how);
        if let Some(t) = f.truth.filter(|t| *t != f.pc) {
            let _ = write!(tail, " · truth {t:#x}");
            let _ = write!(spans, r##"<tspan fill="{FAIL}"> · truth {t:#x}</tspan>"##);
        }
        labels.push(Label { column, at: yy, spans, chars: format!("#{k} {name}{tail}").chars().count() });
    }
    if let VerdictReport::Unreliable { reason, pc, function, fp } = &walk.verdict {
        let (column, yy) = last.unwrap_or((0, top));
        let (xx, ex) = (columns[column].x + COL / 2.0, (yy - 28.0).max(top - 30.0));
        let _ = write!(
            body,
            r##"<g class="failure"><line x1="{xx:.1}" y1="{yy:.1}" x2="{xx:.1}" y2="{ex:.1}" stroke="{FAIL}" stroke-width="2" stroke-dasharray="4 3"/><path d="M{:.1},{:.1} l12,12 m0,-12 l-12,12" stroke="{FAIL}" stroke-width="3"/></g>"##,
            xx - 6.0,
            ex - 12.0,
        );
        let at_fn = function.clone().unwrap_or_else(|| format!("{pc:#x}"));
        let text = format!("✗ step from {at_fn} failed: {} (fp {fp:#x})", reason.as_str());
        labels.push(Label {
            column,
            at: ex - 6.0,
            spans: format!(r##"<tspan fill="{FAIL}" font-weight="bold">{}</tspan>"##, esc(&text)),
            chars: text.chars().count(),
        });
    }
    // Labels top-down per column, each at its place or just below the one above it.
    let mut widest = 0.0f64;
    for (c, col) in columns.iter().enumerate() {
        let mut mine: Vec<&Label> = labels.iter().filter(|l| l.column == c).collect();
        mine.sort_by(|a, b| a.at.total_cmp(&b.at));
        let mut next = f64::MIN;
        for l in mine {
            let ly = l.at.max(next);
            next = ly + LINE;
            bottom = bottom.max(ly + 6.0);
            let (edge, lx, anchor) =
                if col.left { (col.x, col.x - 40.0, "end") } else { (col.x + COL, col.x + COL + 40.0, "start") };
            let tx = if col.left { lx - 4.0 } else { lx + 4.0 };
            widest = widest.max(if col.left { 0.0 } else { tx + l.chars as f64 * CHAR });
            let _ = write!(
                body,
                r##"<g class="label"><polyline points="{edge:.1},{:.1} {:.1},{:.1} {lx:.1},{ly:.1}" fill="none" stroke="#bdbdbd"/><text x="{tx:.1}" y="{:.1}" text-anchor="{anchor}">{}</text></g>"##,
                l.at,
                (edge + lx) / 2.0,
                l.at,
                ly + 4.0,
                l.spans
            );
        }
    }
    // The first column's labels run left from it: make room for the longest.
    let left_chars = labels.iter().filter(|l| l.column == 0).map(|l| l.chars).max().unwrap_or(0);
    let shift = (left_chars as f64 * CHAR + 50.0 - LABELS).max(0.0);
    let width = (columns.last().map_or(0.0, |c| c.x + COL + 60.0).max(widest) + MARGIN + shift).max(1000.0);
    let height = bottom + MARGIN;

    let mut head = String::new();
    let right = header(&mut head, report, walk, unit);
    let width = width.max(right + MARGIN);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="11">
<title>{}</title>
<defs>"##,
        esc(&format!("{}: {}", report.dump.display(), walk.verdict))
    );
    for w in [Witness::Two, Witness::FramePointer, Witness::Orc, Witness::Given] {
        let (color, _, id) = witness(w);
        let _ = write!(
            svg,
            r##"<marker id="{id}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>"##
        );
    }
    let _ = write!(
        svg,
        r##"</defs>
<rect width="100%" height="100%" fill="#ffffff"/>
"##
    );
    svg.push_str(&head);
    svg.push('\n');
    let _ = write!(
        svg,
        r##"<g transform="translate({shift:.1},0)">{body}</g>
</svg>
"##
    );
    Ok(svg)
}

fn stack_name(s: StackReport) -> &'static str {
    match s.kind {
        orcwalk::StackKind::Task => "task",
        orcwalk::StackKind::Irq => "IRQ",
        orcwalk::StackKind::Overflow => "overflow",
        orcwalk::StackKind::SdeiNormal => "SDEI normal",
        orcwalk::StackKind::SdeiCritical => "SDEI critical",
        orcwalk::StackKind::Efi => "EFI",
    }
}

/// The dump, the verdict, and a legend with the scale.
/// Returns how far right it reaches.
fn header(svg: &mut String, report: &ShowReport, walk: &DumpReport, unit: u64) -> f64 {
    let verdict_color = match walk.verdict {
        VerdictReport::Correct | VerdictReport::UnprovenTruth => "#2e7d32",
        VerdictReport::FalseReliable | VerdictReport::Unreliable { .. } => FAIL,
    };
    let (title, what, verdict) = (
        report.dump.display().to_string(),
        format!(
            "{} sample, {} walk{}: ",
            if report.kernel { "kernel" } else { "user" },
            walk.policy.name(),
            if walk.strict { " (strict)" } else { "" }
        ),
        walk.verdict.to_string(),
    );
    let frames = format!(" ({} frames)", walk.frames.len());
    let _ = write!(
        svg,
        r##"<g class="header"><text x="{MARGIN}" y="{:.1}" font-size="14" font-weight="bold">{}</text><text x="{MARGIN}" y="{:.1}">{}<tspan fill="{verdict_color}" font-weight="bold">{}</tspan>{frames}</text>"##,
        MARGIN + 12.0,
        esc(&title),
        MARGIN + 32.0,
        esc(&what),
        esc(&verdict),
    );
    let longest = (title.chars().count() as f64 * 14.0 / 11.0).max((what.len() + verdict.len() + frames.len()) as f64);
    let ly = MARGIN + 58.0;
    let mut x = MARGIN;
    for w in [Witness::Two, Witness::FramePointer, Witness::Orc, Witness::Given] {
        let (color, words, id) = witness(w);
        let text = match w {
            Witness::Given => "start (given)".to_string(),
            _ => format!("step proven by {words}"),
        };
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="2" marker-end="url(#{id})"/><text x="{:.1}" y="{:.1}">{}</text>"##,
            x + 26.0,
            x + 32.0,
            ly + 4.0,
            esc(&text)
        );
        x += 40.0 + text.chars().count() as f64 * CHAR + 14.0;
    }
    let ly = ly + 24.0;
    let _ = write!(
        svg,
        r##"<rect x="{MARGIN}" y="{:.1}" width="26" height="3" fill="#424242"/><text x="{:.1}" y="{:.1}">frame record (16 bytes at fp)</text>"##,
        ly - 2.0,
        MARGIN + 32.0,
        ly + 4.0
    );
    let mut x = MARGIN + 32.0 + 30.0 * CHAR + 14.0;
    // A swatch `width` wide at x, its label after it, and x past both.
    let mut item = |x: &mut f64, swatch: String, width: f64, label: &str| {
        let _ = write!(svg, r##"{swatch}<text x="{:.1}" y="{:.1}">{label}</text>"##, *x + width, ly + 4.0);
        *x += width + label.chars().count() as f64 * CHAR + 20.0;
    };
    let top = ly - 5.0;
    let swatch = format!(
        r##"<rect x="{x:.1}" y="{top:.1}" width="26" height="10" fill="#ffe0b2" stroke="#ef6c00" stroke-dasharray="3 2"/>"##
    );
    item(&mut x, swatch, 32.0, "pt_regs");
    let swatch = format!(r##"<rect x="{x:.1}" y="{top:.1}" width="26" height="10" fill="#e3f2fd" stroke="#9e9e9e"/>"##);
    item(&mut x, swatch, 32.0, "memory in the dump");
    let swatch = format!(r##"<path d="M{x:.1},{top:.1} l10,10 m0,-10 l-10,10" stroke="{FAIL}" stroke-width="3"/>"##);
    item(&mut x, swatch, 18.0, "failed step");
    // The scale: the columns' ticks.
    let text = format!("to scale: {} a tick, high addresses at the top", kib(unit));
    let _ = write!(svg, r##"<text x="{x:.1}" y="{:.1}">{}</text></g>"##, ly + 4.0, esc(&text));
    (x + text.chars().count() as f64 * CHAR).max(MARGIN + longest * CHAR)
}
