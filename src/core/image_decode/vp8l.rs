//! WebP lossless (VP8L): what the decoder's prefix-code tables will cost, read from the bitstream before
//! the decoder runs.
//!
//! A lossless image names, pixel block by pixel block, which group of five prefix codes codes it; the
//! number of groups is the largest name its entropy image holds, plus one. The decoder builds every
//! group up to that number, each code a lookup table of up to 1,024 entries, whether any pixel uses it
//! or not: about 15 bytes of stream each, 4 KB of memory each, and tens of microseconds. A 4 MB file of
//! 4x4 pixels names 65,536 groups and takes 1.4 GB. This reads the transforms and the entropy image (only
//! its literal values: copies and cache hits repeat values already seen, so the largest literal is the
//! largest name) and every group's code lengths, and adds up the tables as the decoder would size them.
//! It builds no table and decodes no pixel of the image itself.

/// The most prefix-code groups an image may use. Each costs the decoder tens of microseconds and up
/// to 20 KiB whether a pixel uses it or not.
pub const MAX_GROUPS: u32 = 4096;

/// What the decoder's prefix codes for one lossless bitstream cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tables {
    /// Groups of five codes for the image's pixels.
    pub groups: u32,
    /// Bytes of the lookup tables the decoder builds for them.
    pub bytes: u64,
}

/// The decoder's lookup tables are at most 2^10 entries: longer codes go on in a tree.
const MAX_TABLE_BITS: u8 = 10;
/// Code lengths of the code-length code, in the order the stream gives them.
const CODE_LENGTH_ORDER: [usize; 19] = [
    17, 18, 0, 1, 2, 3, 4, 5, 16, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
];
/// Symbols of the five codes of a group: green (with the length prefixes), red, blue, alpha, distance.
const ALPHABETS: [u16; 5] = [256 + 24, 256, 256, 256, 40];

/// The tables of a VP8L chunk's bitstream (with its 5-byte header); `None` when the stream breaks off or
/// is malformed before the groups end (the decoder then says what is wrong).
pub fn tables(chunk: &[u8]) -> Option<Tables> {
    let mut bits = Bits::new(chunk);
    if bits.read(8)? != 0x2F {
        return None;
    }
    let width = bits.read(14)? + 1;
    let height = bits.read(14)? + 1;
    bits.read(4)?; // alpha hint, version
    image_stream(&mut bits, width, height)
}

/// The tables of a lossless alpha stream (an ALPH chunk's data after its first byte), which has no
/// header: its size is the image's.
pub fn alpha_tables(stream: &[u8], width: u32, height: u32) -> Option<Tables> {
    image_stream(&mut Bits::new(stream), width, height)
}

/// The main image: its transforms, then its codes.
fn image_stream(bits: &mut Bits, width: u32, height: u32) -> Option<Tables> {
    let mut xsize = width;
    let mut seen = [false; 4];
    while bits.read(1)? == 1 {
        let kind = bits.read(2)? as usize;
        if std::mem::replace(&mut seen[kind], true) {
            return None; // each transform at most once
        }
        match kind {
            0 | 1 => {
                // Predictor or colour transform: a sub-image of one entry per block.
                let block = bits.read(3)? + 2;
                sub_image(bits, subsample(xsize, block), subsample(height, block))?;
            }
            2 => {} // subtract green: no data
            _ => {
                // Colour indexing: the palette, then pixels packed several to an entry.
                let colours = bits.read(8)? + 1;
                sub_image(bits, colours, 1)?;
                let packing = match colours {
                    0..=2 => 3,
                    3..=4 => 2,
                    5..=16 => 1,
                    _ => 0,
                };
                xsize = subsample(xsize, packing);
            }
        }
    }
    let cache = colour_cache(bits)?;
    let groups = if bits.read(1)? == 1 {
        let block = bits.read(3)? + 2;
        sub_image(bits, subsample(xsize, block), subsample(height, block))? + 1
    } else {
        1
    };
    if groups > MAX_GROUPS {
        // Not read further: the count alone is over the limit.
        return Some(Tables { groups, bytes: 0 });
    }
    let mut bytes = 0;
    for _ in 0..groups {
        bytes += group(bits, cache)?.1;
    }
    Some(Tables { groups, bytes })
}

/// An entropy-coded sub-image (a transform's data, the palette, the entropy image): its colour cache,
/// its one group of codes, its pixels. Returns the largest group name among its literal pixels (red
/// and green, as the entropy image names groups).
fn sub_image(bits: &mut Bits, width: u32, height: u32) -> Option<u32> {
    let cache = colour_cache(bits)?;
    let (codes, _) = group(bits, cache)?;
    let [green, red, blue, alpha, distance] = codes;
    let pixels = u64::from(width) * u64::from(height);
    let (mut at, mut largest) = (0u64, 0u32);
    while at < pixels {
        let g = green.decode(bits)?;
        if g < 256 {
            let r = red.decode(bits)?;
            blue.decode(bits)?;
            alpha.decode(bits)?;
            largest = largest.max((u32::from(r) << 8) | u32::from(g));
            at += 1;
        } else if g < 256 + 24 {
            // A copy of earlier pixels: its length, then its distance (whose value is not needed).
            let length = prefix_value(bits, g - 256)?;
            let d = distance.decode(bits)?;
            prefix_value(bits, d)?;
            at += u64::from(length);
        } else {
            at += 1; // a colour-cache hit repeats a colour already seen
        }
    }
    Some(largest)
}

/// The colour cache's size in bits (0: none).
fn colour_cache(bits: &mut Bits) -> Option<u32> {
    if bits.read(1)? == 0 {
        return Some(0);
    }
    let size = bits.read(4)?;
    (1..=11).contains(&size).then_some(size)
}

/// A length or distance from its prefix symbol and extra bits.
fn prefix_value(bits: &mut Bits, symbol: u16) -> Option<u32> {
    let symbol = u32::from(symbol);
    if symbol < 4 {
        return Some(symbol + 1);
    }
    let extra = (symbol - 2) >> 1;
    if extra > 24 {
        return None;
    }
    let offset = (2 + (symbol & 1)) << extra;
    Some(offset + bits.read(extra)? + 1)
}

/// One group's five codes and the bytes of the decoder's tables for them.
fn group(bits: &mut Bits, cache: u32) -> Option<([Code; 5], u64)> {
    let mut bytes = 0;
    let mut read = |i: usize| -> Option<Code> {
        let extra = if i == 0 && cache > 0 { 1 << cache } else { 0 };
        let code = Code::read(bits, ALPHABETS[i] + extra)?;
        bytes += code.table_bytes();
        Some(code)
    };
    let codes = [read(0)?, read(1)?, read(2)?, read(3)?, read(4)?];
    Some((codes, bytes))
}

/// A canonical prefix code, decoded bit by bit (a parse, not a hot loop).
#[derive(Debug)]
enum Code {
    /// One symbol, zero bits.
    Single(u16),
    /// Two symbols, one bit.
    Two(u16, u16),
    /// From code lengths: symbols sorted by (length, value), and how many have each length.
    Lengths { symbols: Vec<u16>, count: [u16; 16] },
}

impl Code {
    fn read(bits: &mut Bits, alphabet: u16) -> Option<Code> {
        if bits.read(1)? == 1 {
            let two = bits.read(1)? == 1;
            let first_bits = if bits.read(1)? == 1 { 8 } else { 1 };
            let first = bits.read(first_bits)? as u16;
            if !two {
                return Some(Code::Single(first));
            }
            let second = bits.read(8)? as u16;
            return Some(Code::Two(first, second));
        }
        let mut length_lengths = [0u8; 19];
        for &symbol in &CODE_LENGTH_ORDER[..4 + bits.read(4)? as usize] {
            length_lengths[symbol] = bits.read(3)? as u8;
        }
        let length_code = Code::from_lengths(&length_lengths)?;
        let mut remaining = if bits.read(1)? == 1 {
            let width = 2 + 2 * bits.read(3)?;
            2 + bits.read(width)?
        } else {
            u32::from(alphabet)
        };
        let mut lengths = vec![0u8; usize::from(alphabet)];
        let (mut symbol, mut previous) = (0usize, 8u8);
        while symbol < lengths.len() && remaining > 0 {
            remaining -= 1;
            let length = length_code.decode(bits)?;
            if length < 16 {
                lengths[symbol] = length as u8;
                symbol += 1;
                if length != 0 {
                    previous = length as u8;
                }
                continue;
            }
            let (extra, base, value) = match length {
                16 => (2, 3, previous),
                17 => (3, 3, 0),
                _ => (7, 11, 0),
            };
            let repeat = (bits.read(extra)? + base) as usize;
            lengths.get_mut(symbol..symbol + repeat)?.fill(value);
            symbol += repeat;
        }
        Code::from_lengths(&lengths)
    }

    /// The canonical code of `lengths` (at most 15 each), its symbols put in order by counting, not
    /// sorting: a group's codes cost a pass over their alphabets, whatever the lengths.
    fn from_lengths(lengths: &[u8]) -> Option<Code> {
        let mut count = [0u16; 16];
        for &l in lengths.iter().filter(|&&l| l > 0) {
            count[usize::from(l)] += 1;
        }
        let total: u16 = count.iter().sum();
        if total <= 1 {
            let symbol = lengths.iter().position(|&l| l > 0)?;
            return Some(Code::Single(symbol as u16));
        }
        // Where each length's symbols start among all, in (length, value) order.
        let mut next = [0u16; 16];
        for l in 1..15 {
            next[l + 1] = next[l] + count[l];
        }
        let mut symbols = vec![0u16; usize::from(total)];
        for (symbol, &l) in lengths.iter().enumerate().filter(|&(_, &l)| l > 0) {
            symbols[usize::from(next[usize::from(l)])] = symbol as u16;
            next[usize::from(l)] += 1;
        }
        Some(Code::Lengths { symbols, count })
    }

    fn decode(&self, bits: &mut Bits) -> Option<u16> {
        match self {
            Code::Single(symbol) => Some(*symbol),
            Code::Two(zero, one) => Some(if bits.read(1)? == 0 { *zero } else { *one }),
            Code::Lengths { symbols, count } => {
                // Canonical decoding: codes of each length follow those of the length before.
                let (mut code, mut first, mut index) = (0u32, 0u32, 0u32);
                for &n in &count[1..] {
                    code |= bits.read(1)?;
                    let n = u32::from(n);
                    if code < first + n {
                        return symbols.get((index + code - first) as usize).copied();
                    }
                    index += n;
                    first = (first + n) << 1;
                    code <<= 1;
                }
                None
            }
        }
    }

    /// The decoder's table for this code: none for one symbol, two entries for two, and 2^(the longest
    /// length, at most 10) entries of 4 bytes otherwise, plus its tree of longer codes (3 nodes a symbol
    /// at most, 8 bytes each).
    fn table_bytes(&self) -> u64 {
        match self {
            Code::Single(_) => 0,
            Code::Two(..) => 2 * 4 + 3 * 8,
            Code::Lengths { symbols, count } => {
                let longest = count.iter().rposition(|&n| n > 0).unwrap_or(0) as u8;
                let table = 1u64 << longest.min(MAX_TABLE_BITS);
                4 * table + 3 * 8 * symbols.len() as u64
            }
        }
    }
}

fn subsample(size: u32, bits: u32) -> u32 {
    size.div_ceil(1 << bits)
}

/// The bitstream, least significant bit first.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits { data, at: 0 }
    }

    /// The next `n` bits (at most 32); `None` past the end.
    fn read(&mut self, n: u32) -> Option<u32> {
        let end = self.at + n as usize;
        if end > self.data.len() * 8 {
            return None;
        }
        // The (at most five) bytes the bits lie in, least significant first.
        let window = self.data[self.at >> 3..]
            .iter()
            .take(5)
            .enumerate()
            .fold(0u64, |w, (k, &byte)| w | u64::from(byte) << (8 * k));
        let value = (window >> (self.at & 7)) & ((1u64 << n) - 1);
        self.at = end;
        Some(value as u32)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A VP8L bitstream writer: values least significant bit first, prefix codes from their first bit.
    #[derive(Default)]
    pub struct Writer {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }

    impl Writer {
        pub fn put(&mut self, value: u32, count: u32) -> &mut Self {
            self.acc |= u64::from(value) << self.n;
            self.n += count;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
            self
        }

        fn code(&mut self, code: u32, length: u32) -> &mut Self {
            for i in (0..length).rev() {
                self.put((code >> i) & 1, 1);
            }
            self
        }

        /// A simple code of one 8-bit symbol.
        pub fn single(&mut self, symbol: u32) -> &mut Self {
            self.put(1, 1).put(0, 1).put(1, 1).put(symbol, 8)
        }

        /// A code of eleven symbols (0 to 10) of lengths 1, 2, ..., 10, 10: a 1,024-entry table.
        fn eleven(&mut self) -> &mut Self {
            // The code-length code: lengths 1 to 10 as symbols, with these code lengths (complete).
            let length_lengths = [
                (1, 2),
                (2, 2),
                (3, 2),
                (4, 4),
                (5, 4),
                (6, 4),
                (7, 6),
                (8, 6),
            ];
            let length_lengths = [&length_lengths[..], &[(9, 6), (10, 6)]].concat();
            let of = |s: usize| length_lengths.iter().find(|l| l.0 == s).map_or(0, |l| l.1);
            self.put(0, 1).put(10, 4);
            for &symbol in &CODE_LENGTH_ORDER[..14] {
                self.put(of(symbol), 3);
            }
            self.put(1, 1).put(1, 3).put(9, 4); // eleven lengths follow
            for length in (1..=10).chain([10]) {
                let (code, bits) = canonical(&length_lengths, length);
                self.code(code, bits);
            }
            self
        }

        pub fn finish(&mut self) -> Vec<u8> {
            let mut out = std::mem::take(&mut self.out);
            if self.n > 0 {
                out.push(self.acc as u8);
            }
            out
        }
    }

    /// The canonical code of `symbol` among (symbol, length) pairs.
    fn canonical(lengths: &[(usize, u32)], symbol: usize) -> (u32, u32) {
        let mut sorted = lengths.to_vec();
        sorted.sort_by_key(|&(s, l)| (l, s));
        let (mut code, mut previous) = (0u32, 0u32);
        for (s, l) in sorted {
            code <<= l - previous;
            if s == symbol {
                return (code, l);
            }
            code += 1;
            previous = l;
        }
        unreachable!("{symbol} has no code")
    }

    /// A 4x4 lossless stream whose entropy image names group `groups - 1`; every group's five codes
    /// are single symbols (`eleven` makes the first code of the first group an 11-symbol one).
    pub fn groups_stream(groups: u32, eleven: bool) -> Vec<u8> {
        let mut w = Writer::default();
        w.put(0x2F, 8).put(3, 14).put(3, 14).put(0, 4);
        w.put(0, 1).put(0, 1); // no transform, no colour cache
        w.put(1, 1).put(0, 3); // meta prefix codes, 4x4 blocks: one entropy-image pixel
        w.put(0, 1); // the entropy image: no colour cache
        let name = groups - 1;
        for symbol in [name & 0xFF, name >> 8, 0, 0, 0] {
            w.single(symbol);
        }
        for i in 0..groups * 5 {
            if eleven && i == 0 {
                w.eleven();
            } else {
                w.single(0);
            }
        }
        if eleven {
            w.put(0, 16); // the pixels: symbol 0 of the eleven-symbol code, one bit each
        }
        w.finish()
    }

    #[test]
    fn the_entropy_images_largest_name_sets_the_group_count() {
        for groups in [1, 2, 300, MAX_GROUPS] {
            let t = tables(&groups_stream(groups, false)).unwrap();
            assert_eq!(t, Tables { groups, bytes: 0 });
        }
        // Over the limit: counted, the groups not read.
        let over = tables(&groups_stream(MAX_GROUPS + 1, false)).unwrap();
        assert_eq!(over.groups, MAX_GROUPS + 1);
    }

    #[test]
    fn a_code_of_length_ten_costs_a_full_table() {
        let t = tables(&groups_stream(3, true)).unwrap();
        assert_eq!(t.groups, 3);
        assert_eq!(t.bytes, 4 * 1024 + 3 * 8 * 11);
    }

    #[test]
    fn a_stream_that_breaks_off_costs_nothing_known() {
        let stream = groups_stream(300, false);
        assert_eq!(tables(&stream[..stream.len() / 2]), None);
        assert_eq!(tables(&[0x2E, 0, 0, 0, 0]), None);
    }
}
