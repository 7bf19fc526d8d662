//! The statistics co-occurrence reports: a one-sided Fisher exact test for enrichment and
//! the Benjamini–Hochberg adjustment for testing many values at once.

/// Natural logarithms of `0!` to `n!`, for exact hypergeometric probabilities.
#[derive(Debug, Clone)]
pub struct LnFactorials(Vec<f64>);

impl LnFactorials {
    /// The table up to `n!`.
    pub fn up_to(n: u64) -> Self {
        let mut table = Vec::with_capacity(n as usize + 1);
        let mut sum = 0.0;
        table.push(0.0);
        for k in 1..=n {
            sum += (k as f64).ln();
            table.push(sum);
        }
        Self(table)
    }

    fn get(&self, k: u64) -> f64 {
        self.0.get(k as usize).copied().unwrap_or(f64::NAN)
    }

    fn ln_choose(&self, n: u64, k: u64) -> f64 {
        self.get(n) - self.get(k) - self.get(n - k)
    }

    /// One-sided Fisher exact test for enrichment: the probability of seeing `hits` or more
    /// cases with a value in a subset of `subset` cases drawn from `population` cases of
    /// which `with_value` have it (hypergeometric upper tail). Arguments must satisfy
    /// `hits <= subset <= population`, `hits <= with_value <= population`, and the table
    /// must reach `population`.
    pub fn fisher_greater(&self, hits: u64, subset: u64, with_value: u64, population: u64) -> f64 {
        let upper = subset.min(with_value);
        let lower = subset.saturating_sub(population - with_value);
        if hits <= lower {
            return 1.0;
        }
        let ln_total = self.ln_choose(population, subset);
        let mut p = 0.0;
        for i in hits..=upper {
            let ln = self.ln_choose(with_value, i)
                + self.ln_choose(population - with_value, subset - i)
                - ln_total;
            p += ln.exp();
        }
        p.min(1.0)
    }
}

/// Benjamini–Hochberg adjusted p-values (q-values), in the order given.
pub fn benjamini_hochberg(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![1.0; m];
    let mut running = 1.0_f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        let q = p_values[i] * m as f64 / (rank + 1) as f64;
        running = running.min(q).min(1.0);
        // Never below p (it is not, in exact arithmetic; rounding of p·m/m can say otherwise).
        adjusted[i] = running.max(p_values[i]);
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-4
    }

    #[test]
    fn fisher_matches_known_tables() {
        let table = LnFactorials::up_to(100);
        // Fisher's tea tasting: [[3, 1], [1, 3]], one-sided p = 17/70.
        assert!(close(table.fisher_greater(3, 4, 4, 8), 17.0 / 70.0));
        // [[4, 0], [0, 4]]: 1/70.
        assert!(close(table.fisher_greater(4, 4, 4, 8), 1.0 / 70.0));
        // Nothing more than expected: p = 1 at or below the smallest possible count.
        assert!(close(table.fisher_greater(0, 4, 4, 8), 1.0));
        // [[10, 2], [3, 15]]: the upper tail summed with exact integer binomials is
        // 0.000465181 (sum over i = 10..=12 of C(13,i)·C(17,12−i) / C(30,12)).
        assert!((table.fisher_greater(10, 12, 13, 30) - 0.000_465_181).abs() < 1e-8);
    }

    #[test]
    fn benjamini_hochberg_matches_a_worked_example() {
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005]);
        let expected = [0.02, 0.04, 0.04, 0.02];
        for (a, b) in q.iter().zip(expected) {
            assert!(close(*a, b), "{q:?}");
        }
        assert!(benjamini_hochberg(&[]).is_empty());
    }
}
