//! `orcwalk-sim show DUMP --svg OUT.svg`: the picture is well-formed XML (an SVG a browser or
//! any XML reader opens) and names every frame of known dumps with its function and witness,
//! and the failing step with its reason.

use std::path::PathBuf;
use std::process::Command;

use orcwalk_sim::report::{Options, show};

fn dump(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/kernel").join(name)
}

/// `show --svg` of `name`, parsed: the text of every `<text>` element and the classes of the
/// SVG's groups and shapes.
fn picture(name: &str) -> (Vec<String>, Vec<String>) {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.svg", name.replace('/', "-")));
    let run = Command::new(env!("CARGO_BIN_EXE_orcwalk-sim"))
        .arg("show")
        .arg(dump(name))
        .arg("--svg")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let svg = std::fs::read_to_string(&out).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{name}: not well-formed XML: {e}"));
    let root = doc.root_element();
    assert_eq!((root.tag_name().namespace(), root.tag_name().name()), (Some("http://www.w3.org/2000/svg"), "svg"));
    for attr in ["width", "height", "viewBox"] {
        assert!(root.attribute(attr).is_some(), "{name}: <svg> without {attr}");
    }
    let texts = root
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.descendants().filter(|d| d.is_text()).map(|d| d.text().unwrap_or("")).collect::<String>())
        .collect();
    let classes = root.descendants().filter_map(|n| n.attribute("class")).map(str::to_string).collect();
    (texts, classes)
}

/// Every frame, as `#k function+off/size · witness`, in one label.
fn assert_frames(name: &str, texts: &[String], frames: &[(&str, &str)]) {
    for (k, (function, witness)) in frames.iter().enumerate() {
        let label = texts
            .iter()
            .find(|t| t.starts_with(&format!("#{k} ")))
            .unwrap_or_else(|| panic!("{name}: no label for #{k}"));
        assert!(label.contains(&format!("#{k} {function}+0x")), "{name}: #{k} is not {function}: {label}");
        assert!(label.contains(witness), "{name}: #{k} without its witness ({witness}): {label}");
    }
    assert!(
        !texts.iter().any(|t| t.starts_with(&format!("#{} ", frames.len()))),
        "{name}: more frames than the walk's"
    );
}

/// A reliable walk from the IRQ stack to the task stack, across the exception boundary of an
/// interrupt taken from EL0's syscall path, to the task's final pt_regs.
#[test]
fn a_reliable_walk_across_an_exception_names_every_frame() {
    let name = "6.12-cloud/00216.core";
    let (texts, classes) = picture(name);
    let two = "2 witnesses";
    assert_frames(
        name,
        &texts,
        &[
            ("__run_timer_base.part.0", "start, given"),
            ("run_timer_softirq", two),
            ("handle_softirqs", two),
            ("__do_softirq", two),
            ("____do_softirq", two),
            ("call_on_irq_stack", two),
            ("do_softirq_own_stack", "1 witness (x29 chain)"),
            ("__irq_exit_rcu", two),
            ("irq_exit_rcu", two),
            ("el1_interrupt", two),
            ("el1h_64_irq_handler", two),
            ("el1h_64_irq", two),
            ("el0_da", two),
            ("el0t_64_sync_handler", two),
            ("el0t_64_sync", two),
        ],
    );
    assert!(texts.iter().any(|t| t.contains("reliable, matches truth")));
    assert!(texts.iter().any(|t| t == "IRQ stack, 16 KiB") && texts.iter().any(|t| t == "task stack, 16 KiB"));
    assert!(texts.iter().any(|t| t.starts_with("#12 el0_da+") && t.ends_with("from pt_regs")));
    assert_eq!(classes.iter().filter(|c| *c == "pt_regs").count(), 2, "the exception's pt_regs and the final one");
    assert_eq!(classes.iter().filter(|c| *c == "record").count(), 15);
    assert!(!classes.iter().any(|c| c == "failure"));
}

/// An unreliable walk: across the IRQ's exception boundary, then the interrupted pc's ORC entry
/// is undefined. The failing step is marked with its reason.
#[test]
fn an_unreliable_walk_names_every_frame_and_the_failed_step() {
    let name = "6.12-cloud/00050.core";
    let (texts, classes) = picture(name);
    let two = "2 witnesses";
    assert_frames(
        name,
        &texts,
        &[
            ("arch_timer_handler_virt", "start, given"),
            ("handle_percpu_devid_irq", two),
            ("handle_irq_desc", two),
            ("generic_handle_domain_irq", two),
            ("gic_handle_irq", two),
            ("call_on_irq_stack", two),
            ("do_interrupt_handler", "1 witness (x29 chain)"),
            ("el1_interrupt", two),
            ("el1h_64_irq_handler", two),
            ("el1h_64_irq", two),
            ("rcu_all_qs", two),
        ],
    );
    let failed = texts.iter().find(|t| t.starts_with("✗ step from")).expect("the failed step is labelled");
    assert!(failed.contains("rcu_all_qs+0x4/0x94") && failed.contains("ORC entry undefined"), "{failed}");
    assert_eq!(classes.iter().filter(|c| *c == "failure").count(), 1);
    assert_eq!(classes.iter().filter(|c| *c == "pt_regs").count(), 1);
}

/// Function names are text, whatever they hold (C++ names hold `<`, `>` and `&`).
#[test]
fn names_with_markup_characters_stay_text() {
    let mut report = show(&dump("6.12-cloud/00050.core"), Options::default()).unwrap();
    let walk = report.walk.as_mut().unwrap();
    let odd = "operator<<<std::vector<int> >(\"a\" & 'b')";
    walk.frames[3].function = Some(format!("{odd}+0x4/0x10"));
    let svg = orcwalk_sim::svg::render(&report).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("not well-formed XML: {e}"));
    let text: String = doc.descendants().filter(|n| n.is_text()).map(|n| n.text().unwrap_or("")).collect();
    assert!(text.contains(odd));
}

/// The README's picture is `show --svg` of its dump as the command draws it now (its PNG is a
/// headless-Chromium screenshot of that SVG).
#[test]
fn the_readme_picture_is_show_svg() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("readme-walk.svg");
    let run = Command::new(env!("CARGO_BIN_EXE_orcwalk-sim"))
        .current_dir(&repo)
        .args(["show", "tests/corpus/kernel/6.12-cloud/00050.core", "--svg"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let shipped = std::fs::read_to_string(repo.join("docs/walk-unreliable.svg")).unwrap();
    assert!(
        std::fs::read_to_string(&out).unwrap() == shipped,
        "docs/walk-unreliable.svg differs from `orcwalk-sim show tests/corpus/kernel/6.12-cloud/00050.core --svg`: \
         write it anew (and its PNG with headless Chromium)"
    );
}
