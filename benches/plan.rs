//! How planning scales with the size of a stack: spec parsing and validation, the diff against live state, the
//! ordering of operations and the rendering, on synthetic stacks of growing size, all in one run.
//!
//! `cargo bench --bench plan` prints one line per size and the growth ratios: planning should grow linearly with
//! the number of resources (a ratio near the size ratio), never quadratically. No AWS calls: the live side is the
//! desired state mirrored with fake ids, as a read right after an apply would return it (so the diff does the full
//! comparison of every attribute and finds nothing to do).

use std::path::Path;
use std::time::{Duration, Instant};

use webscale::plan::{Action, diff};
use webscale::resources::{self, Live, as_reference, cloud_id, rewrite};
use webscale::spec::{RegionChoice, parse};

/// A stack with every zone the region has letters for and `groups` security groups, each accepting traffic from
/// the previous one (a long reference chain) and from two CIDRs.
fn spec(groups: usize) -> String {
    let mut s =
        String::from("[stack]\nname = \"bench\"\nregion = \"us-east-1\"\n\n[network]\ncidr = \"10.0.0.0/16\"\n");
    for (i, zone) in ('a'..='z').enumerate() {
        s.push_str(&format!(
            "[network.zones.{zone}]\navailability_zone = \"{zone}\"\npublic_subnet = \"10.0.{}.0/24\"\nprivate_subnet = \"10.0.{}.0/24\"\n",
            i,
            100 + i
        ));
    }
    s.push_str("[network.route_tables.public]\ntier = \"public\"\nroutes = [{ destination = \"0.0.0.0/0\", target = \"internet_gateway\" }]\n");
    s.push_str("[network.route_tables.private]\ntier = \"private\"\n");
    for g in 0..groups {
        s.push_str(&format!("[security_groups.g{g}]\ningress = [\n"));
        s.push_str("  { protocol = \"tcp\", ports = 443, cidr = \"0.0.0.0/0\" },\n");
        s.push_str(&format!("  {{ protocol = \"tcp\", ports = \"1024-65535\", cidr = \"10.{}.0.0/16\" }},\n", g % 250));
        if g > 0 {
            s.push_str(&format!("  {{ protocol = \"tcp\", ports = 80, security_group = \"g{}\" }},\n", g - 1));
        }
        s.push_str("]\n");
    }
    s.push_str("[network_acls.public]\ntier = \"public\"\ningress = [{ rule = 100, protocol = \"all\", cidr = \"0.0.0.0/0\", action = \"allow\" }]\n");
    s
}

/// What a read right after a successful apply returns: every reference as the referenced resource's id.
fn mirror(desired: &[resources::Desired]) -> Vec<Live> {
    let id = |a: &resources::Address| format!("id-{}", a.as_str().replace(['.', '_'], "-"));
    desired
        .iter()
        .map(|d| {
            let own = if d.address.kind() == "security_group_rules" {
                id(&resources::Address::new("security_group", d.address.name()))
            } else {
                id(&d.address)
            };
            let attrs = d
                .attrs
                .iter()
                .map(|(k, v)| (k.clone(), rewrite(v, &mut |x| as_reference(x).map(|a| cloud_id(id(&a))))))
                .collect();
            Live::new(d.address.clone(), &d.region, own, attrs)
        })
        .collect()
}

struct Figures {
    resources: usize,
    parse: Duration,
    diff_fresh: Duration,
    diff_settled: Duration,
    order: Duration,
    render: Duration,
}

fn measure(groups: usize) -> Figures {
    let text = spec(groups);
    let t = Instant::now();
    let stack = parse(Path::new("bench.toml"), &text, &RegionChoice::default()).expect("the synthetic spec is valid");
    let parse_time = t.elapsed();
    let desired = resources::desired(&stack);
    let live = mirror(&desired);

    let t = Instant::now();
    let fresh = diff("bench", "us-east-1", desired.clone(), Vec::new()).expect("plan");
    let diff_fresh = t.elapsed();
    assert!(fresh.changes.iter().all(|c| c.action == Action::Create));

    let t = Instant::now();
    let settled = diff("bench", "us-east-1", desired.clone(), live).expect("plan");
    let diff_settled = t.elapsed();
    assert!(!settled.has_changes(), "a mirrored stack must plan no changes");

    let t = Instant::now();
    webscale::apply::check(resources::REGISTRY, &fresh).expect("orderable");
    let order = t.elapsed();

    let t = Instant::now();
    let text = webscale::ui::plan_text(&fresh, false);
    let render = t.elapsed();
    assert!(text.contains("to add"));
    Figures { resources: desired.len(), parse: parse_time, diff_fresh, diff_settled, order, render }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    // Best of three per size, so one busy moment on the machine does not decide a figure.
    let best = |groups: usize| {
        let runs: Vec<Figures> = (0..3).map(|_| measure(groups)).collect();
        let pick = |f: fn(&Figures) -> Duration| runs.iter().map(f).min().unwrap_or_default();
        Figures {
            resources: runs[0].resources,
            parse: pick(|f| f.parse),
            diff_fresh: pick(|f| f.diff_fresh),
            diff_settled: pick(|f| f.diff_settled),
            order: pick(|f| f.order),
            render: pick(|f| f.render),
        }
    };
    println!(
        "{:>9}  {:>9}  {:>11}  {:>13}  {:>9}  {:>9}  {:>9}",
        "resources", "parse ms", "diff new ms", "diff same ms", "order ms", "render ms", "total ms"
    );
    let sizes = [250, 500, 1000, 2000];
    let figures: Vec<Figures> = sizes.iter().map(|&g| best(g)).collect();
    for f in &figures {
        let total = f.parse + f.diff_fresh + f.diff_settled + f.order + f.render;
        println!(
            "{:>9}  {:>9.2}  {:>11.2}  {:>13.2}  {:>9.2}  {:>9.2}  {:>9.2}",
            f.resources,
            ms(f.parse),
            ms(f.diff_fresh),
            ms(f.diff_settled),
            ms(f.order),
            ms(f.render),
            ms(total)
        );
    }
    let (small, large) = (&figures[0], &figures[figures.len() - 1]);
    let total = |f: &Figures| (f.parse + f.diff_fresh + f.diff_settled + f.order + f.render).as_secs_f64();
    println!(
        "\n{:.1}x the resources took {:.1}x the time (linear would be {:.1}x; quadratic {:.0}x)",
        large.resources as f64 / small.resources as f64,
        total(large) / total(small),
        large.resources as f64 / small.resources as f64,
        (large.resources as f64 / small.resources as f64).powi(2)
    );
}
