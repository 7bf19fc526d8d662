//! The statistics co-occurrence reports: a one-sided Fisher exact test for enrichment and
//! the Benjamini–Hochberg adjustment for testing many values at once.

use std::sync::OnceLock;

/// How often a value occurs in a subset against the whole registry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frequencies {
    /// Share of the subset's cases with the value (0 when the subset is empty).
    pub frequency: f64,
    /// Share of the registry's cases with the value.
    pub registry_frequency: f64,
    /// `frequency / registry_frequency`; 0 when the value is nowhere in the registry.
    pub ratio: f64,
}

/// The frequencies of a value found in `subset` of `subset_total` cases and `registry` of
/// `registry_total`.
pub fn frequencies(
    subset: u64,
    subset_total: u64,
    registry: u64,
    registry_total: u64,
) -> Frequencies {
    // At most 1: merged bounds need not be consistent.
    let fraction = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            (part as f64 / whole as f64).min(1.0)
        }
    };
    let frequency = fraction(subset, subset_total);
    let registry_frequency = fraction(registry, registry_total);
    Frequencies {
        frequency,
        registry_frequency,
        ratio: if registry_frequency > 0.0 {
            frequency / registry_frequency
        } else {
            0.0
        },
    }
}

/// Exact values of `ln(n!)` below this; Stirling's series above (error below 1e-13).
const EXACT_LN_FACTORIALS: u64 = 256;

/// `ln(n!)` for every `n` below [`EXACT_LN_FACTORIALS`], each summed once, term by term as
/// [`ln_factorial`] always summed it (so the values are the same to the last bit).
fn exact_ln_factorials() -> &'static [f64] {
    static TABLE: OnceLock<Vec<f64>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..EXACT_LN_FACTORIALS)
            .map(|n| (2..=n).map(|k| (k as f64).ln()).sum())
            .collect()
    })
}

/// `ln(n!)`.
pub fn ln_factorial(n: u64) -> f64 {
    if n < EXACT_LN_FACTORIALS {
        return exact_ln_factorials()[n as usize];
    }
    let x = n as f64;
    let inverse = 1.0 / x;
    let inverse2 = inverse * inverse;
    x * x.ln() - x
        + 0.5 * (2.0 * std::f64::consts::PI * x).ln()
        + inverse * (1.0 / 12.0 - inverse2 * (1.0 / 360.0 - inverse2 / 1260.0))
}

fn ln_choose(n: u64, k: u64) -> f64 {
    ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k)
}

/// Terms of a tail at or below this fraction of the sum so far end the summation (so does a
/// tail whose first term underflows to zero: its p-value is below 1e-308).
const TAIL_EPSILON: f64 = 1e-17;

/// One-sided Fisher exact test for enrichment: the probability of seeing `hits` or more
/// cases with a value in a subset of `subset` cases drawn from `population` cases of which
/// `with_value` have it (the hypergeometric upper tail). Requires `hits <= subset <=
/// population` and `hits <= with_value <= population`.
///
/// The tail is summed from its first term with the ratio of consecutive probabilities, away
/// from the mode, until the terms no longer matter; when `hits` lies below the mean the
/// lower tail is summed instead and subtracted from 1. Either way the work is about the
/// width of the distribution, not the size of the registry.
pub fn fisher_greater(hits: u64, subset: u64, with_value: u64, population: u64) -> f64 {
    Enrichment::new(subset, population).p_value(hits, with_value)
}

/// [`fisher_greater`] for many values against one subset of one population, as
/// co-occurrence tests them: what every test shares is computed once (with the same
/// operations, so each p-value is the same to the last bit).
#[derive(Debug, Clone, Copy)]
pub struct Enrichment {
    subset: u64,
    population: u64,
    /// `ln C(population, subset)`, the denominator of every probability.
    ln_draws: f64,
}

impl Enrichment {
    /// Tests against a subset of `subset` cases of `population` cases.
    pub fn new(subset: u64, population: u64) -> Self {
        Self {
            subset,
            population,
            ln_draws: if subset <= population {
                ln_choose(population, subset)
            } else {
                f64::NAN
            },
        }
    }

    /// [`fisher_greater`] of `hits` in the subset among `with_value` cases of the
    /// population with the value.
    pub fn p_value(&self, hits: u64, with_value: u64) -> f64 {
        let (n, k, total) = (self.subset, with_value, self.population);
        let lowest = n.saturating_sub(total - k);
        let highest = n.min(k);
        if hits <= lowest {
            return 1.0;
        }
        if hits > highest {
            return 0.0;
        }
        let pmf = |i: u64| (ln_choose(k, i) + ln_choose(total - k, n - i) - self.ln_draws).exp();
        // P(X = i + 1) / P(X = i). `total + i + 1 >= k + n` for every `i >= lowest`, while
        // `total - k - n` alone is negative when the subset and the value must overlap.
        let up = |i: u64| {
            ((k - i) as f64 * (n - i) as f64) / ((i + 1) as f64 * (total + i + 1 - k - n) as f64)
        };
        let mean = n as f64 * k as f64 / total as f64;
        if hits as f64 >= mean {
            let mut term = pmf(hits);
            let mut sum = term;
            let mut i = hits;
            while i < highest {
                term *= up(i);
                i += 1;
                sum += term;
                if term <= sum * TAIL_EPSILON {
                    break;
                }
            }
            sum.min(1.0)
        } else {
            // 1 − P(X ≤ hits − 1), summed downwards from hits − 1.
            let mut i = hits - 1;
            let mut term = pmf(i);
            let mut sum = term;
            while i > lowest {
                term /= up(i - 1);
                i -= 1;
                sum += term;
                if term <= sum * TAIL_EPSILON {
                    break;
                }
            }
            (1.0 - sum).clamp(0.0, 1.0)
        }
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
        // Fisher's tea tasting: [[3, 1], [1, 3]], one-sided p = 17/70.
        assert!(close(fisher_greater(3, 4, 4, 8), 17.0 / 70.0));
        // [[4, 0], [0, 4]]: 1/70; below the mean the lower tail is used: 1 − 1/70.
        assert!(close(fisher_greater(4, 4, 4, 8), 1.0 / 70.0));
        assert!(close(fisher_greater(1, 4, 4, 8), 1.0 - 1.0 / 70.0));
        // Far in the tail the first term underflows: p is 0, found without walking the tail.
        assert_eq!(fisher_greater(40_000, 45_000, 50_000, 1_000_000), 0.0);
        // Nothing more than expected: p = 1 at or below the smallest possible count.
        assert!(close(fisher_greater(0, 4, 4, 8), 1.0));
        // A subset and a value so large that they must overlap (here in at least 20 of the
        // 40 cases): 1 − P(X ≤ 21) = 1 − (C(30,20)·C(10,10) + C(30,21)·C(10,9)) / C(40,30),
        // and an upper tail, (C(8,7)·C(2,1) + C(8,8)·C(2,0)) / C(10,8).
        assert!(close(
            fisher_greater(22, 30, 30, 40),
            1.0 - 173_116_515.0 / 847_660_528.0
        ));
        assert!(close(fisher_greater(7, 8, 8, 10), 17.0 / 45.0));
        // [[10, 2], [3, 15]]: the upper tail summed with exact integer binomials is
        // 0.000465181 (sum over i = 10..=12 of C(13,i)·C(17,12−i) / C(30,12)).
        assert!((fisher_greater(10, 12, 13, 30) - 0.000_465_181).abs() < 1e-8);
    }

    #[test]
    fn the_table_holds_the_exact_sums_to_the_last_bit() {
        for n in 0..EXACT_LN_FACTORIALS {
            let sum: f64 = (2..=n).map(|k| (k as f64).ln()).sum();
            assert_eq!(ln_factorial(n).to_bits(), sum.to_bits(), "{n}");
        }
    }

    #[test]
    fn many_tests_against_one_subset_equal_single_tests() {
        let test = Enrichment::new(5_000, 1_000_000);
        for (hits, with_value) in [(0, 10), (3, 10), (150, 40_000), (260, 40_000), (10, 11)] {
            assert_eq!(
                test.p_value(hits, with_value).to_bits(),
                fisher_greater(hits, 5_000, with_value, 1_000_000).to_bits()
            );
        }
    }

    #[test]
    fn stirling_agrees_with_the_exact_sum() {
        for n in [256u64, 300, 1_000, 100_000] {
            let exact: f64 = (2..=n).map(|k| (k as f64).ln()).sum();
            assert!((ln_factorial(n) - exact).abs() < 1e-9 * exact, "{n}");
        }
    }

    #[test]
    fn both_tails_agree_with_a_direct_sum_on_a_large_registry() {
        // 1,000,000 cases, 40,000 with the value, a subset of 5,000: mean 200.
        let (total, k, n) = (1_000_000u64, 40_000u64, 5_000u64);
        let direct = |hits: u64| -> f64 {
            (hits..=n)
                .map(|i| {
                    (ln_choose(k, i) + ln_choose(total - k, n - i) - ln_choose(total, n)).exp()
                })
                .sum()
        };
        for hits in [150, 199, 200, 201, 260, 400] {
            let p = fisher_greater(hits, n, k, total);
            // Logs of factorials near 1.3e7 carry about 1e-9 of rounding each, so the two
            // ways of summing agree to about seven digits.
            let d = direct(hits);
            assert!((p - d).abs() < 1e-7 * d.max(1e-300), "{hits}: {p} vs {d}");
        }
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
