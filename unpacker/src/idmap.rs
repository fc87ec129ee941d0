//! Ownership mapping from the ids in a layer (the container's view) to the
//! ids files get on disk, as podman's `--uidmap container:host:size`.

use std::fmt;
use std::str::FromStr;

/// One `container:host:size` range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdRange {
    /// First id inside the container.
    pub container: u32,
    /// The host id it maps to.
    pub host: u32,
    /// How many consecutive ids.
    pub size: u32,
}

/// A set of ranges; the identity when empty.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct IdMap {
    ranges: Vec<IdRange>,
}

/// Why an id map is unusable or an id unmappable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdMapError {
    /// Bad syntax.
    #[error("invalid id map {0:?}: expected CONTAINER:HOST:SIZE with numbers, size > 0")]
    Syntax(String),
    /// Ranges that overlap on the container side or the host side.
    #[error("id map ranges overlap: {0}")]
    Overlap(String),
    /// An id no range covers.
    #[error("id {0} has no mapping in the id map (ranges: {1}); add a range that covers it")]
    Unmapped(u32, String),
}

impl IdMap {
    /// The identity mapping.
    pub fn identity() -> IdMap {
        IdMap::default()
    }

    /// A map from ranges, checked for overlaps.
    pub fn new(ranges: Vec<IdRange>) -> Result<IdMap, IdMapError> {
        for (i, a) in ranges.iter().enumerate() {
            for b in &ranges[i + 1..] {
                let overlap = |x: u32, xs: u32, y: u32, ys: u32| {
                    (x as u64) < y as u64 + ys as u64 && (y as u64) < x as u64 + xs as u64
                };
                if overlap(a.container, a.size, b.container, b.size)
                    || overlap(a.host, a.size, b.host, b.size)
                {
                    return Err(IdMapError::Overlap(format!("{a} and {b}")));
                }
            }
        }
        Ok(IdMap { ranges })
    }

    /// Parses one or more `container:host:size` (comma or space separated,
    /// or given as several flags joined by the caller).
    pub fn parse_all<'a>(specs: impl IntoIterator<Item = &'a str>) -> Result<IdMap, IdMapError> {
        let mut ranges = Vec::new();
        for spec in specs {
            for part in spec.split([',', ' ']).filter(|p| !p.is_empty()) {
                ranges.push(part.parse()?);
            }
        }
        IdMap::new(ranges)
    }

    /// podman's keep-id: `uid` maps to itself, the rest of the container's
    /// ids fill the subordinate ranges `subs` (host start, count) in order:
    /// container 0..uid, then uid+1.. . Used for the gid side likewise.
    pub fn keep_id(uid: u32, subs: &[(u32, u32)]) -> Result<IdMap, IdMapError> {
        let mut ranges = vec![IdRange {
            container: uid,
            host: uid,
            size: 1,
        }];
        let mut next: u64 = 0;
        for &(host, count) in subs {
            let mut host = host as u64;
            let mut left = count as u64;
            while left > 0 {
                if next == uid as u64 {
                    next += 1;
                }
                // Run up to the kept id or the end of this subordinate range.
                let limit = if next < uid as u64 {
                    uid as u64 - next
                } else {
                    left
                };
                let take = left.min(limit).min(u32::MAX as u64 - next);
                if take == 0 {
                    break;
                }
                ranges.push(IdRange {
                    container: next as u32,
                    host: host as u32,
                    size: take as u32,
                });
                next += take;
                host += take;
                left -= take;
            }
        }
        IdMap::new(ranges)
    }

    /// Whether this is the identity.
    pub fn is_identity(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The ranges.
    pub fn ranges(&self) -> &[IdRange] {
        &self.ranges
    }

    /// The host id for a container id.
    pub fn to_host(&self, id: u32) -> Result<u32, IdMapError> {
        if self.ranges.is_empty() {
            return Ok(id);
        }
        for r in &self.ranges {
            if id >= r.container && (id as u64) < r.container as u64 + r.size as u64 {
                return Ok(r.host + (id - r.container));
            }
        }
        Err(IdMapError::Unmapped(id, self.to_string()))
    }
}

impl fmt::Display for IdRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.container, self.host, self.size)
    }
}

impl fmt::Display for IdMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ranges.is_empty() {
            return f.write_str("identity");
        }
        let parts: Vec<String> = self.ranges.iter().map(|r| r.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

impl FromStr for IdRange {
    type Err = IdMapError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || IdMapError::Syntax(s.to_owned());
        let mut it = s.split(':');
        let mut next = || it.next().ok_or_else(bad)?.parse::<u32>().map_err(|_| bad());
        let r = IdRange {
            container: next()?,
            host: next()?,
            size: next()?,
        };
        if s.split(':').count() != 3 || r.size == 0 {
            return Err(bad());
        }
        if r.container as u64 + r.size as u64 > u32::MAX as u64 + 1
            || r.host as u64 + r.size as u64 > u32::MAX as u64 + 1
        {
            return Err(bad());
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_maps() {
        let m = IdMap::parse_all(["0:100000:65536"]).unwrap();
        assert_eq!(m.to_host(0).unwrap(), 100000);
        assert_eq!(m.to_host(1000).unwrap(), 101000);
        assert_eq!(m.to_host(65535).unwrap(), 165535);
        let err = m.to_host(65536).unwrap_err().to_string();
        assert!(
            err.contains("65536") && err.contains("0:100000:65536"),
            "{err}"
        );
        assert_eq!(IdMap::identity().to_host(4242).unwrap(), 4242);
        let two = IdMap::parse_all(["0:1000:1,1:100000:65535"]).unwrap();
        assert_eq!(two.to_host(0).unwrap(), 1000);
        assert_eq!(two.to_host(1).unwrap(), 100000);
    }

    #[test]
    fn rejects_bad_maps() {
        for bad in ["", "0:1", "0:1:0", "a:b:c", "0:1:2:3", "4294967295:0:2"] {
            assert!(IdMap::parse_all([bad]).is_err() || bad.is_empty(), "{bad}");
        }
        assert!(matches!(
            IdMap::parse_all(["0:100:10,5:200:10"]).unwrap_err(),
            IdMapError::Overlap(_)
        ));
        assert!(matches!(
            IdMap::parse_all(["0:100:10,20:105:10"]).unwrap_err(),
            IdMapError::Overlap(_)
        ));
    }

    #[test]
    fn keep_id_maps_the_user_to_itself() {
        let m = IdMap::keep_id(1000, &[(100000, 65536)]).unwrap();
        assert_eq!(m.to_host(1000).unwrap(), 1000);
        assert_eq!(m.to_host(0).unwrap(), 100000);
        assert_eq!(m.to_host(999).unwrap(), 100999);
        assert_eq!(m.to_host(1001).unwrap(), 101000);
        assert_eq!(m.to_host(65536).unwrap(), 165535);
        assert!(m.to_host(65537).is_err());
        // Several subordinate ranges are used in order.
        let m = IdMap::keep_id(5, &[(200, 3), (500, 10)]).unwrap();
        let got: Vec<u32> = (0..14).map(|i| m.to_host(i).unwrap()).collect();
        assert_eq!(
            got,
            vec![200, 201, 202, 500, 501, 5, 502, 503, 504, 505, 506, 507, 508, 509]
        );
    }
}
