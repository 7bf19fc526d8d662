//! Load time of the `hpo` crate (`Ontology::from_standard`: hp.obo, phenotype.hpoa and
//! genes_to_phenotype.txt) against casereg's loader (hp.obo only, embedded gzip or file).
//! Argument: the folder holding the three gzipped HPO files (default `../shared/data`).
//! Prints the median of 5 runs of each, in milliseconds.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

const FILES: [&str; 3] = ["hp.obo", "phenotype.hpoa", "genes_to_phenotype.txt"];
const RUNS: usize = 5;

fn median_ms(mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[RUNS / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let source = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "../shared/data".to_owned()),
    );
    // hpo wants the three files uncompressed in one folder.
    let dir = std::env::temp_dir().join(format!("hpo-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for name in FILES {
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(source.join(format!("{name}.gz")))?)
            .read_to_end(&mut text)?;
        std::fs::write(dir.join(name), text)?;
    }
    let hpo_crate = median_ms(|| {
        let ontology =
            hpo::Ontology::from_standard(dir.to_str().unwrap_or(".")).expect("hpo loads");
        assert!(ontology.len() > 19_000);
    });
    let embedded = median_ms(|| {
        let ontology = casereg_core::ontology::Ontology::embedded().expect("embedded loads");
        assert!(ontology.term_count() > 19_000);
    });
    let file = median_ms(|| {
        let ontology =
            casereg_core::ontology::Ontology::from_path(&dir.join("hp.obo")).expect("file loads");
        assert!(ontology.term_count() > 19_000);
    });
    std::fs::remove_dir_all(Path::new(&dir))?;
    println!("hpo crate, Ontology::from_standard (3 files): median {hpo_crate:.0} ms");
    println!("casereg, embedded hp.obo.gz: median {embedded:.0} ms");
    println!("casereg, hp.obo file: median {file:.0} ms");
    Ok(())
}
