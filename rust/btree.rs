// SPDX-License-Identifier: GPL-2.0

//! The btree: loaded from disk at mount, updated copy-on-write, committed with a superblock
//! write.
//!
//! Nodes are never overwritten: the first change to a node since the last commit moves it to
//! newly allocated buckets, and a split gets its new nodes the same way. All of them come from
//! one restartable allocation request per insert, sized before anything changes. A commit
//! writes every changed node to all of its copies, then points the superblocks at the new
//! root; until then the old tree is intact on disk, so a mount that fails before the commit
//! leaves the filesystem as it was and can be retried.

use crate::allocator::NodeAlloc;
use crate::bdev::{BlockDevice, IoBatch, IoBuf, IoTicket};
use crate::shared::bkey::{self, key_digest, KeyHeaderDisk, Kind, Pos, KEY_HEADER};
use crate::shared::btree_format::{
    decode_node, encode_interior, encode_leaf, leaf_body, Child, INTERIOR_CAPACITY, LEAF_BYTES,
};
use crate::shared::layout::Field;
use crate::shared::superblock::{BtreeRoot, NodePtr, PtrError, BLOCK_SIZE, MAX_BTREE_LEVEL};
use crate::vec_ext::VecExt;
use core::cell::Cell;
use core::fmt::Write as _;
use kernel::{
    alloc::{KVVec, KVec},
    prelude::*,
};

/// Most interior nodes on the way from the root to a leaf (the format's deepest tree).
const MAX_PATH: usize = MAX_BTREE_LEVEL as usize;

/// A child of an interior node, in memory.
#[derive(Clone, Copy)]
struct ChildRef {
    /// Smallest position the child covers.
    key: Pos,
    /// Index of the child in [`Btree::nodes`].
    node: usize,
}

/// A node in memory.
struct Node {
    level: u8,
    /// A leaf's records, sorted, packed as on disk (checked when decoded, or made by
    /// [`bkey::encode`]); at most [`LEAF_BYTES`] but during an insert that splits.
    recs: KVec<u8>,
    /// Where each record of `recs` starts, in order (a lookup is a binary search).
    offs: KVec<u16>,
    /// Sorted children (interior nodes).
    children: KVec<ChildRef>,
    /// Where the node lives; for a dirty node, the new buckets it will be written to.
    at: NodeAlloc,
    /// For a dirty node that existed on disk, where it was read from: freed by the commit.
    old: Option<NodeAlloc>,
    dirty: bool,
    /// Write sequence number of the copies on disk (0 for a node not written yet).
    seq: u64,
}

/// Position and value length of the record at `at` of a leaf's records (which are valid).
fn rec_at(recs: &[u8], at: usize) -> (Pos, usize) {
    let h = KeyHeaderDisk::read(&recs[at..]);
    (
        Pos {
            kind: h.kind,
            ino: h.ino,
            off: h.off,
        },
        h.len as usize,
    )
}

/// Where `pos` is in a leaf's records (`offs`: where each starts): `Ok((index, offset, record
/// size))` of its record, or `Err((index, offset))` where it would go.
fn find_rec(
    recs: &[u8],
    offs: &[u16],
    pos: Pos,
) -> core::result::Result<(usize, usize, usize), (usize, usize)> {
    match offs.binary_search_by(|&o| rec_at(recs, o as usize).0.cmp(&pos)) {
        Ok(i) => {
            let at = offs[i] as usize;
            Ok((i, at, bkey::record_size(rec_at(recs, at).1)))
        }
        Err(i) => Err((i, offs.get(i).map_or(recs.len(), |&o| o as usize))),
    }
}

/// The start of every record of `recs` (valid records), into `offs`.
fn index_records(recs: &[u8], offs: &mut KVec<u16>) -> Result {
    offs.clear();
    let mut at = 0;
    while at < recs.len() {
        offs.push(at as u16, GFP_KERNEL)?;
        at += bkey::record_size(rec_at(recs, at).1);
    }
    Ok(())
}

impl Node {
    /// Whether the node holds more than a node may (it must split).
    fn over(&self) -> bool {
        if self.level == 0 {
            self.recs.len() > LEAF_BYTES
        } else {
            self.children.len() > INTERIOR_CAPACITY
        }
    }
}

/// Reads one node's copies: any copy that checks out will do.
pub(crate) trait NodeIo {
    /// Whether `ptr` points into an allocatable bucket of a member (checked before any use).
    fn check_ptr(&self, ptr: NodePtr) -> core::result::Result<(), PtrError>;
    /// Reads the block at the start of `ptr`'s bucket.
    fn read_node(&self, ptr: NodePtr, buf: &mut IoBuf) -> Result;
    /// Whether `member` is missing (a degraded mount): its copies are kept but not read.
    fn member_missing(&self, _member: u32) -> bool {
        false
    }
    /// The device and byte offset of the start of `ptr`'s bucket, where a node is written.
    fn node_target(&self, ptr: NodePtr) -> Result<(&BlockDevice, u64)>;
    /// Filesystem uuid.
    fn uuid(&self) -> [u8; 16];
}

/// Figures for `internal/btree_stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BtreeStats {
    /// Map keys in the tree (the journal replay's test keys).
    pub(crate) keys: u64,
    /// Namespace keys (inodes, directory entries, symbolic link pieces).
    pub(crate) namespace_keys: u64,
    /// Nodes in the tree.
    pub(crate) nodes: u64,
    /// Levels (1 for a lone leaf).
    pub(crate) depth: u64,
    /// Order-independent digest of the map keys and their values.
    pub(crate) digest: u64,
}

/// The whole btree in memory.
pub(crate) struct Btree {
    /// Every node (sized by the tree: a `KVVec`, never one physically contiguous allocation).
    nodes: KVVec<Node>,
    /// While loading: every bucket holding a node copy, sorted, to refuse a node that two
    /// pointers share (which would also make a cycle) and to bound the tree by the device.
    seen: KVVec<NodePtr>,
    root: usize,
    /// Write sequence number of the last committed root.
    seq: u64,
    /// An update failed after it began to change the tree (out of memory in a split): the tree
    /// in memory may have lost or misplaced records, and must not be written.
    torn: bool,
    /// Where [`Btree::update`] encodes its record ([`bkey::MAX_RECORD`] bytes once used).
    scratch: KVec<u8>,
    /// Committed locations of nodes taken out of the tree since the last commit
    /// ([`Btree::prune_empty`]): freed by the commit, as rewritten nodes' old locations are.
    pruned: KVec<NodeAlloc>,
}

impl Btree {
    /// Write sequence number of the last committed root; the next commit writes one more.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// Whether an update failed half-way (see [`Btree::update`]): the tree must not be written.
    pub(crate) fn torn(&self) -> bool {
        self.torn
    }
}

fn to_alloc(nr: u32, ptrs: &[NodePtr]) -> NodeAlloc {
    let mut a = NodeAlloc {
        nr_ptrs: nr.min(ptrs.len() as u32),
        ..Default::default()
    };
    for (dst, src) in a.ptrs.iter_mut().zip(ptrs.iter()).take(nr as usize) {
        *dst = *src;
    }
    a
}

/// Adds a copy to `at` (at most as many as it has room for).
fn push_copy(at: &mut NodeAlloc, p: NodePtr) {
    if let Some(slot) = at.ptrs.get_mut(at.nr_ptrs as usize) {
        *slot = p;
        at.nr_ptrs += 1;
    }
}

impl Btree {
    /// Loads the tree rooted at `root`, checking every node.
    pub(crate) fn load(io: &impl NodeIo, root: &BtreeRoot) -> Result<Btree> {
        let mut t = Btree {
            nodes: KVVec::new(),
            seen: KVVec::new(),
            root: 0,
            seq: root.node_seq,
            torn: false,
            scratch: KVec::new(),
            pruned: KVec::new(),
        };
        let mut bufs = [IoBuf::new(BLOCK_SIZE)?, IoBuf::new(BLOCK_SIZE)?];
        t.root = t.load_node(
            io,
            &mut bufs,
            to_alloc(root.nr_ptrs as u32, &root.ptrs),
            root.level,
            0,
            root.node_seq,
            (Pos::MIN, None),
        )?;
        t.seen = KVVec::new();
        Ok(t)
    }

    fn load_node(
        &mut self,
        io: &impl NodeIo,
        bufs: &mut [IoBuf; 2],
        ptrs: NodeAlloc,
        level: u8,
        depth: u32,
        max_seq: u64,
        range: (Pos, Option<Pos>),
    ) -> Result<usize> {
        if depth > MAX_BTREE_LEVEL as u32 {
            return Err(EINVAL);
        }
        let uuid = io.uuid();
        let [buf, chosen] = bufs;
        // A node is never newer than what points at it (the superblock's root sequence, or
        // the parent node's): a copy that is, is not this node's.
        let mut chosen_seq = 0;
        // The copies this node keeps: every pointer is range-checked before anything uses it,
        // and every copy in range is read; a copy is kept if its block is the very block of
        // the first copy that decodes (copies of a node are written from one buffer), or if
        // it cannot be read (an I/O error says nothing about the pointer). Dropped copies are
        // not the node's: reconcile does not mark them `btree`, a commit does not free them,
        // and a rewrite of the parent leaves them out.
        let mut at = NodeAlloc::default();
        let mut unreadable = false;
        // Copies on missing members (a degraded mount), kept as unreadable ones are.
        let mut on_missing = 0;
        let mut recs = KVec::new();
        let mut children = KVec::new();
        let mut have = false;
        // Every key of the node lies in the range its parent gives it: [first key, next
        // sibling's first key).
        let in_range = |p: Pos| p >= range.0 && range.1.is_none_or(|hi| p < hi);
        for (i, ptr) in ptrs.ptrs[..ptrs.nr_ptrs as usize].iter().enumerate() {
            let drop_copy = |why: &dyn core::fmt::Display| {
                pr_warn!(
                    "{}: level {level} btree node copy {i} at member {} bucket {} dropped: {why}\n",
                    crate::shared::superblock::UuidFmt(&uuid),
                    ptr.member,
                    ptr.bucket
                )
            };
            if let Err(e) = io.check_ptr(*ptr) {
                drop_copy(&e.describe());
                continue;
            }
            // Copies are on distinct members (as the superblock's root copies must be).
            let same_member = at.ptrs[..at.nr_ptrs as usize]
                .iter()
                .any(|q| q.member == ptr.member);
            if io.member_missing(ptr.member) {
                on_missing += 1;
                if !same_member {
                    push_copy(&mut at, *ptr);
                }
                continue;
            }
            if let Err(e) = io.read_node(*ptr, buf) {
                pr_warn!(
                    "{}: btree node copy at member {} bucket {} unreadable ({}); trying another\n",
                    crate::shared::superblock::UuidFmt(&uuid),
                    ptr.member,
                    ptr.bucket,
                    e.to_errno()
                );
                unreadable = true;
                if same_member {
                    drop_copy(&"another copy is on the same member");
                    continue;
                }
                push_copy(&mut at, *ptr);
                continue;
            }
            let chose_now = !have;
            if have {
                if buf[..BLOCK_SIZE] != chosen[..BLOCK_SIZE] {
                    drop_copy(&"its block differs from the copy in use");
                    continue;
                }
            } else {
                recs.clear();
                children.clear();
                let alloc_failed = Cell::new(false);
                let outside = Cell::new(false);
                let decoded = decode_node(
                    &uuid,
                    level,
                    buf,
                    |k| outside.set(outside.get() | !in_range(k.pos)),
                    |c| {
                        outside.set(outside.get() | !in_range(c.pos()));
                        alloc_failed.set(alloc_failed.get() | children.push(c, GFP_KERNEL).is_err())
                    },
                );
                if alloc_failed.get() {
                    return Err(ENOMEM);
                }
                let h = match decoded {
                    Ok(h) => h,
                    Err(e) => {
                        drop_copy(&format_args!("refused: {e:?}"));
                        continue;
                    }
                };
                if outside.get() {
                    drop_copy(&"a key lies outside the range its parent gives the node");
                    continue;
                }
                if h.seq > max_seq {
                    drop_copy(&format_args!(
                        "sequence {} is newer than what points at it ({max_seq})",
                        h.seq
                    ));
                    continue;
                }
                if level == 0 {
                    recs.extend_from_slice(leaf_body(buf, &h), GFP_KERNEL)?;
                }
                chosen[..BLOCK_SIZE].copy_from_slice(&buf[..BLOCK_SIZE]);
                chosen_seq = h.seq;
                have = true;
            }
            if same_member {
                let kept = &mut at.ptrs[..at.nr_ptrs as usize];
                match kept.iter_mut().find(|q| q.member == ptr.member) {
                    // The copy in use takes the place of an unreadable one on its member.
                    Some(q) if chose_now => {
                        pr_warn!(
                            "{}: level {level} btree node copy at member {} bucket {} dropped: \
                             another copy is on the same member\n",
                            crate::shared::superblock::UuidFmt(&uuid),
                            q.member,
                            q.bucket
                        );
                        *q = *ptr;
                    }
                    _ => drop_copy(&"another copy is on the same member"),
                }
                continue;
            }
            push_copy(&mut at, *ptr);
        }
        if !have && on_missing > 0 && on_missing == ptrs.nr_ptrs {
            let mut where_ = crate::text::Text::<96>::new();
            for p in &ptrs.ptrs[..ptrs.nr_ptrs as usize] {
                let _ = write!(where_, " member {} bucket {}", p.member, p.bucket);
            }
            pr_err!(
                "{}: level {level} btree node (seq at most {max_seq}) has all its copies on \
                 missing member(s):{}\n",
                crate::shared::superblock::UuidFmt(&uuid),
                where_.as_str()
            );
            return Err(ENXIO);
        }
        if !have {
            pr_err!(
                "{}: no usable copy of a level {level} btree node\n",
                crate::shared::superblock::UuidFmt(&uuid)
            );
            return Err(if unreadable { EIO } else { EINVAL });
        }
        // Only now, with the copies checked, do their buckets count as the tree's.
        for p in &at.ptrs[..at.nr_ptrs as usize] {
            match self
                .seen
                .binary_search_by_key(&(p.member, p.bucket), |q| (q.member, q.bucket))
            {
                Ok(_) => {
                    pr_err!(
                        "{}: btree node at member {} bucket {} is referenced twice\n",
                        crate::shared::superblock::UuidFmt(&uuid),
                        p.member,
                        p.bucket
                    );
                    return Err(EINVAL);
                }
                Err(i) => self.seen.insert(i, *p)?,
            }
        }
        let mut refs = KVec::with_capacity(children.len(), GFP_KERNEL)?;
        for (i, c) in children.iter().enumerate() {
            let c: &Child = c;
            if level == 0 {
                break;
            }
            let next = children.get(i + 1).map(|n| n.pos()).or(range.1);
            // The first child covers the node's whole lower range: a lookup of a key below its
            // key goes to it (an insert there, or a prune that took out the child before it,
            // leaves keys there), so its range starts where the node's does.
            let from = if i == 0 { range.0 } else { c.pos() };
            let node = self.load_node(
                io,
                bufs,
                to_alloc(c.nr_ptrs, &c.ptrs),
                level - 1,
                depth + 1,
                chosen_seq,
                (from, next),
            )?;
            refs.push(ChildRef { key: c.pos(), node }, GFP_KERNEL)?;
        }
        self.nodes.push(
            Node {
                level,
                offs: {
                    let mut offs = KVec::new();
                    index_records(&recs, &mut offs)?;
                    offs
                },
                recs,
                children: refs,
                at,
                old: None,
                dirty: false,
                seq: chosen_seq,
            },
            GFP_KERNEL,
        )?;
        Ok(self.nodes.len() - 1)
    }

    /// Whether a node changed since the last commit.
    pub(crate) fn is_dirty(&self) -> bool {
        self.nodes.iter().any(|n| n.dirty)
    }

    /// Nodes changed since the last commit (each holds a second bucket per copy until then).
    pub(crate) fn dirty_count(&self) -> usize {
        self.nodes.iter().filter(|n| n.dirty).count()
    }

    /// Calls `visit` with every bucket that holds a copy of a node (current locations).
    pub(crate) fn for_each_bucket(&self, mut visit: impl FnMut(NodePtr)) {
        for n in self.nodes.iter() {
            for p in &n.at.ptrs[..n.at.nr_ptrs as usize] {
                visit(*p);
            }
        }
    }

    /// Sets the key at `pos` to `val` (a value [`bkey::check_value`] accepts), or deletes it
    /// (`val` is `None`; deleting a key that is not there changes nothing). `alloc(n)` must
    /// return `n` new node locations; it is called at most once, before anything changes, and
    /// may park.
    ///
    /// Locations the update did not use (on an error) go back through `release`.
    pub(crate) fn update(
        &mut self,
        pos: Pos,
        val: Option<&[u8]>,
        alloc: impl FnOnce(u32, &mut KVec<NodeAlloc>) -> Result,
        release: impl FnOnce(&[NodeAlloc]),
    ) -> Result {
        // The record, encoded before anything changes (a value the decoder would refuse is
        // refused here, never written), into the tree's scratch buffer.
        let mut rec = core::mem::replace(&mut self.scratch, KVec::new());
        if rec.len() < bkey::MAX_RECORD {
            rec = KVec::from_elem(0u8, bkey::MAX_RECORD, GFP_KERNEL)?;
        }
        let r = match val {
            Some(v) => match bkey::encode(pos, false, v, &mut rec) {
                Some(len) => self.update_rec(pos, Some(&rec[..len]), |_| Ok(()), alloc, release),
                None => Err(EINVAL),
            },
            None => self.update_rec(pos, None, |_| Ok(()), alloc, release),
        };
        self.scratch = rec;
        r
    }

    /// [`Btree::update`] with the record already encoded: `rec` is a record
    /// [`bkey::encode`] made for `pos` (not a deletion), or `None` to delete the key at `pos`.
    /// `old` gets the value the key has before the update (`None`: no key there) before
    /// anything changes; an error from it is the update's, with nothing changed.
    pub(crate) fn update_rec(
        &mut self,
        pos: Pos,
        rec: Option<&[u8]>,
        old: impl FnOnce(Option<&[u8]>) -> Result,
        alloc: impl FnOnce(u32, &mut KVec<NodeAlloc>) -> Result,
        release: impl FnOnce(&[NodeAlloc]),
    ) -> Result {
        if let Some(r) = rec {
            // One record, of this position: what goes into a leaf is checked as a leaf's
            // records are when decoded.
            match bkey::decode_at(r, 0) {
                Ok((k, end)) if k.pos == pos && !k.deleted && end == r.len() => {}
                _ => return Err(EINVAL),
            }
        }
        let mut pool = KVec::new();
        let result = self.update_with(pos, rec, old, alloc, &mut pool);
        if !pool.is_empty() {
            release(&pool);
        }
        result
    }

    /// The path from the root to the leaf for `pos`: (node, index of the child taken) into
    /// `path_buf`, on the stack (no allocation per key); returns its length and the leaf. A tree
    /// deeper than the format allows cannot be written: `EFBIG`.
    fn path_to(
        &self,
        pos: Pos,
        path_buf: &mut [(usize, usize); MAX_PATH],
    ) -> Result<(usize, usize)> {
        let mut depth = 0;
        let mut n = self.root;
        while self.nodes[n].level > 0 {
            let children = &self.nodes[n].children;
            // The last child whose first key is at most `pos` (children are sorted by key).
            let i = children.partition_point(|c| c.key <= pos).saturating_sub(1);
            *path_buf.get_mut(depth).ok_or(EFBIG)? = (n, i);
            depth += 1;
            n = children[i].node;
        }
        Ok((depth, n))
    }

    fn update_with(
        &mut self,
        pos: Pos,
        rec: Option<&[u8]>,
        old: impl FnOnce(Option<&[u8]>) -> Result,
        alloc: impl FnOnce(u32, &mut KVec<NodeAlloc>) -> Result,
        pool: &mut KVec<NodeAlloc>,
    ) -> Result {
        let val = rec;
        let rec_len = rec.map_or(0, |r| r.len());
        let mut path_buf = [(0usize, 0usize); MAX_PATH];
        let (depth, leaf) = self.path_to(pos, &mut path_buf)?;
        let path = &path_buf[..depth];
        let found = find_rec(&self.nodes[leaf].recs, &self.nodes[leaf].offs, pos);
        {
            let recs = &self.nodes[leaf].recs;
            old(found.ok().map(|(_, at, _)| {
                let len = rec_at(recs, at).1;
                &recs[at + KEY_HEADER..at + KEY_HEADER + len]
            }))?;
        }
        if val.is_none() && found.is_err() {
            return Ok(());
        }

        // How many new locations: every clean node on the path moves, and each full node on
        // the way up splits into one more (a root split adds a new root). A leaf over its bytes
        // splits once: each half holds at most half of them plus one record.
        let mut needed = path.iter().filter(|(p, _)| !self.nodes[*p].dirty).count() as u32
            + !self.nodes[leaf].dirty as u32;
        let old_size = found.map_or(0, |(_, _, size)| size);
        let new_bytes = self.nodes[leaf].recs.len() - old_size + rec_len;
        let mut grows = new_bytes > LEAF_BYTES;
        let mut up = path.len();
        while grows {
            needed += 1;
            if up == 0 {
                // A new root, one level up: the format's deepest tree has no room for it.
                if self.nodes[self.root].level >= MAX_BTREE_LEVEL {
                    return Err(EFBIG);
                }
                needed += 1;
                break;
            }
            up -= 1;
            let parent = &self.nodes[path[up].0];
            grows = parent.children.len() + 1 > INTERIOR_CAPACITY;
        }
        if needed > 0 {
            alloc(needed, pool)?;
            if pool.len() < needed as usize {
                return Err(ENOSPC);
            }
        }
        // Room for the record before anything changes.
        self.nodes[leaf].recs.reserve(rec_len, GFP_KERNEL)?;
        self.nodes[leaf].offs.reserve(1, GFP_KERNEL)?;

        // Copy-on-write the path.
        for &(p, _) in path.iter() {
            self.make_dirty(p, pool);
        }
        self.make_dirty(leaf, pool);

        let node = &mut self.nodes[leaf];
        let (i, at) = match found {
            Ok((i, at, size)) => {
                node.recs.drain_range(at, at + size);
                node.offs.drain_range(i, i + 1);
                for o in node.offs[i..].iter_mut() {
                    *o -= size as u16;
                }
                (i, at)
            }
            Err(found) => found,
        };
        // From here on the tree is changing: a failure leaves it torn (see `Btree::torn`).
        let r = match rec {
            Some(r) => node
                .recs
                .insert_slice(at, r)
                .and_then(|()| node.offs.insert(i, at as u16))
                .map(|()| {
                    for o in node.offs[i + 1..].iter_mut() {
                        *o += r.len() as u16;
                    }
                })
                .map_err(Error::from),
            None => Ok(()),
        };
        let r = r.and_then(|()| self.split_up(leaf, path, pool));
        if r.is_err() {
            self.torn = true;
        }
        r
    }

    /// Splits `node` and its ancestors on `path` while one holds more than a node may.
    fn split_up(
        &mut self,
        mut node: usize,
        path: &[(usize, usize)],
        pool: &mut KVec<NodeAlloc>,
    ) -> Result {
        let mut up = path.len();
        while self.nodes[node].over() {
            let (right_key, right) = self.split(node, pool)?;
            if up == 0 {
                let at = pool.pop().ok_or(ENOSPC)?;
                let level = self.nodes[node].level + 1;
                let mut children = KVec::with_capacity(2, GFP_KERNEL)?;
                children.push(
                    ChildRef {
                        key: Pos::MIN,
                        node,
                    },
                    GFP_KERNEL,
                )?;
                children.push(
                    ChildRef {
                        key: right_key,
                        node: right,
                    },
                    GFP_KERNEL,
                )?;
                self.nodes.push(
                    Node {
                        level,
                        recs: KVec::new(),
                        offs: KVec::new(),
                        children,
                        at,
                        old: None,
                        dirty: true,
                        seq: 0,
                    },
                    GFP_KERNEL,
                )?;
                self.root = self.nodes.len() - 1;
                break;
            }
            up -= 1;
            let (parent, i) = path[up];
            self.nodes[parent].children.insert(
                i + 1,
                ChildRef {
                    key: right_key,
                    node: right,
                },
            )?;
            node = parent;
        }
        Ok(())
    }

    /// The value of the key at `pos`, if there is one.
    pub(crate) fn get(&self, pos: Pos) -> Option<&[u8]> {
        let mut path_buf = [(0usize, 0usize); MAX_PATH];
        let (_, leaf) = self.path_to(pos, &mut path_buf).ok()?;
        let recs = &self.nodes[leaf].recs;
        let (_, at, _) = find_rec(recs, &self.nodes[leaf].offs, pos).ok()?;
        let (_, len) = rec_at(recs, at);
        Some(&recs[at + KEY_HEADER..at + KEY_HEADER + len])
    }

    /// Calls `f` for every key in `[from, to)`, in order, until it returns `false`.
    pub(crate) fn scan(&self, from: Pos, to: Pos, f: &mut dyn FnMut(Pos, &[u8]) -> bool) {
        self.scan_node(self.root, from, to, f);
    }

    /// [`Btree::scan`] under node `n`; `false` once `f` said stop.
    fn scan_node(
        &self,
        n: usize,
        from: Pos,
        to: Pos,
        f: &mut dyn FnMut(Pos, &[u8]) -> bool,
    ) -> bool {
        let node = &self.nodes[n];
        if node.level == 0 {
            let recs = &node.recs;
            // From the first record at or after `from`.
            let mut at = match find_rec(recs, &node.offs, from) {
                Ok((_, at, _)) | Err((_, at)) => at,
            };
            while at < recs.len() {
                let (p, len) = rec_at(recs, at);
                if p >= to {
                    return true;
                }
                if p >= from && !f(p, &recs[at + KEY_HEADER..at + KEY_HEADER + len]) {
                    return false;
                }
                at += bkey::record_size(len);
            }
            return true;
        }
        // Children from the last one starting at or before `from` to the last one starting
        // before `to`.
        let first = node
            .children
            .partition_point(|c| c.key <= from)
            .saturating_sub(1);
        for c in node.children[first..].iter() {
            if c.key >= to {
                break;
            }
            if !self.scan_node(c.node, from, to, f) {
                return false;
            }
        }
        true
    }

    fn make_dirty(&mut self, n: usize, pool: &mut KVec<NodeAlloc>) {
        let node = &mut self.nodes[n];
        if !node.dirty {
            if let Some(at) = pool.pop() {
                node.old = Some(node.at);
                node.at = at;
                node.dirty = true;
            }
        }
    }

    /// Moves the upper half of `n` (by bytes for a leaf, by children for an interior node)
    /// into a new node; returns its first key and index.
    fn split(&mut self, n: usize, pool: &mut KVec<NodeAlloc>) -> Result<(Pos, usize)> {
        let at = pool.pop().ok_or(ENOSPC)?;
        let level = self.nodes[n].level;
        let mut right = Node {
            level,
            recs: KVec::new(),
            offs: KVec::new(),
            children: KVec::new(),
            at,
            old: None,
            dirty: true,
            seq: 0,
        };
        let key = if level == 0 {
            let left = &mut self.nodes[n];
            // The first record boundary at or past half the bytes: the left half holds at most
            // half plus one record, the right one at most half.
            let half = left.recs.len() / 2;
            let nr = left.offs.partition_point(|&o| (o as usize) < half);
            let cut = left.offs.get(nr).map_or(left.recs.len(), |&o| o as usize);
            right
                .recs
                .extend_from_slice(&left.recs[cut..], GFP_KERNEL)?;
            right.offs.reserve(left.offs.len() - nr, GFP_KERNEL)?;
            for &o in left.offs[nr..].iter() {
                right.offs.push(o - cut as u16, GFP_KERNEL)?;
            }
            left.recs.truncate(cut);
            left.offs.truncate(nr);
            rec_at(&right.recs, 0).0
        } else {
            let left = &mut self.nodes[n].children;
            let half = left.len() / 2;
            right
                .children
                .extend_from_slice(&left[half..], GFP_KERNEL)?;
            left.truncate(half);
            right.children[0].key
        };
        self.nodes.push(right, GFP_KERNEL)?;
        Ok((key, self.nodes.len() - 1))
    }

    /// Takes the empty parts of the tree out before a commit, so deleted keys give their
    /// buckets back: under a changed interior node (its new copy is written anyway), every child
    /// whose subtree holds no key goes, with its subtree, but for the first child when none
    /// holds a key; then a changed root with one changed child hands the root over to it. No
    /// node needs new buckets for this. A pruned node's new location (never written) goes back
    /// through `release`; its committed one is freed by the commit ([`Btree::committed`]).
    pub(crate) fn prune_empty(&mut self, mut release: impl FnMut(&NodeAlloc)) -> Result {
        if self.torn {
            return Err(EIO);
        }
        let n = self.nodes.len();
        // Whether a node's subtree holds no key, from the leaves up.
        let mut empty: KVVec<bool> = KVVec::from_elem(false, n, GFP_KERNEL)?;
        for level in 0..=self.nodes[self.root].level {
            for i in 0..n {
                let node = &self.nodes[i];
                if node.level != level {
                    continue;
                }
                empty[i] = if level == 0 {
                    node.offs.is_empty()
                } else {
                    node.children.iter().all(|c| empty[c.node])
                };
            }
        }
        let mut gone: KVVec<bool> = KVVec::from_elem(false, n, GFP_KERNEL)?;
        // Everything the pruning needs is allocated before the tree changes: no failure can
        // leave it half pruned. The stack never holds a node twice.
        let mut stack: KVVec<usize> = KVVec::with_capacity(n, GFP_KERNEL)?;
        let mut new_index: KVVec<usize> = KVVec::from_elem(usize::MAX, n, GFP_KERNEL)?;
        let mut nodes = KVVec::with_capacity(n, GFP_KERNEL)?;
        self.pruned.reserve(n, GFP_KERNEL).map_err(Error::from)?;
        let mut any = false;
        // Top down: a changed node drops its empty children (and their subtrees).
        stack.push(self.root, GFP_KERNEL)?;
        while let Some(p) = stack.pop() {
            if self.nodes[p].dirty && self.nodes[p].level > 0 {
                let all_empty = self.nodes[p].children.iter().all(|c| empty[c.node]);
                let lower = self.nodes[p].children[0].key;
                let mut k = 0;
                while k < self.nodes[p].children.len() {
                    let c = self.nodes[p].children[k].node;
                    if empty[c] && !(all_empty && k == 0) {
                        self.nodes[p].children.drain_range(k, k + 1);
                        self.mark_subtree(c, &mut gone, &mut stack)?;
                        any = true;
                    } else {
                        k += 1;
                    }
                }
                // The first child covers the node's whole lower range.
                self.nodes[p].children[0].key = lower;
            }
            for c in self.nodes[p].children.iter() {
                stack.push(c.node, GFP_KERNEL)?;
            }
        }
        // A changed root with one changed child: the child is the root.
        while self.nodes[self.root].level > 0
            && self.nodes[self.root].dirty
            && self.nodes[self.root].children.len() == 1
            && self.nodes[self.nodes[self.root].children[0].node].dirty
        {
            gone[self.root] = true;
            self.root = self.nodes[self.root].children[0].node;
            any = true;
        }
        if !any {
            return Ok(());
        }
        // The nodes left, renumbered.
        let mut kept = 0;
        for i in 0..n {
            if !gone[i] {
                new_index[i] = kept;
                kept += 1;
            }
        }
        let old_nodes = core::mem::replace(&mut self.nodes, KVVec::new());
        for (i, mut node) in old_nodes.into_iter().enumerate() {
            if gone[i] {
                // Within the capacity reserved above.
                if node.dirty {
                    release(&node.at);
                    if let Some(old) = node.old {
                        let _ = self.pruned.push(old, GFP_KERNEL);
                    }
                } else {
                    let _ = self.pruned.push(node.at, GFP_KERNEL);
                }
                continue;
            }
            for c in node.children.iter_mut() {
                c.node = new_index[c.node];
            }
            // Within the capacity reserved above.
            let _ = nodes.push(node, GFP_KERNEL);
        }
        self.root = new_index[self.root];
        self.nodes = nodes;
        Ok(())
    }

    /// Marks node `n` and its subtree gone ([`Btree::prune_empty`]); `stack` is scratch space.
    fn mark_subtree(&self, n: usize, gone: &mut [bool], stack: &mut KVVec<usize>) -> Result {
        let base = stack.len();
        stack.push(n, GFP_KERNEL)?;
        while stack.len() > base {
            let Some(i) = stack.pop() else { break };
            gone[i] = true;
            for c in self.nodes[i].children.iter() {
                stack.push(c.node, GFP_KERNEL)?;
            }
        }
        Ok(())
    }

    /// Marks for rewriting every node whose copies `moves` selects (a member's evacuation:
    /// a copy on the member; re-replication: fewer copies than wanted), and every node above
    /// one (its pointer to the child changes), and moves each of them to new buckets,
    /// copy-on-write as an insert moves its path: the next commit writes them there and frees
    /// their old buckets. `alloc(n, out)` must give `n` new node locations (called once, before
    /// anything changes; it may park); locations left unused go back through `release`.
    /// Returns the nodes that move (0: nothing selected, nothing allocated).
    ///
    /// This is the one step that moves committed nodes' copies after the mount (`node_move.rs`:
    /// a member's evacuation).
    pub(crate) fn rewrite_where(
        &mut self,
        moves: impl Fn(&[NodePtr]) -> bool,
        alloc: impl FnOnce(u32, &mut KVec<NodeAlloc>) -> Result,
        release: impl FnOnce(&[NodeAlloc]),
    ) -> Result<u32> {
        let mut marked: KVVec<bool> = KVVec::with_capacity(self.nodes.len(), GFP_KERNEL)?;
        for n in self.nodes.iter() {
            marked.push(moves(&n.at.ptrs[..n.at.nr_ptrs as usize]), GFP_KERNEL)?;
        }
        // A parent of a marked node is marked: one pass per level at most (no cycles: the
        // loader refused shared nodes).
        for _ in 0..=MAX_BTREE_LEVEL {
            let mut changed = false;
            for i in 0..self.nodes.len() {
                if !marked[i] && self.nodes[i].children.iter().any(|c| marked[c.node]) {
                    marked[i] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let needed = (0..self.nodes.len())
            .filter(|&i| marked[i] && !self.nodes[i].dirty)
            .count() as u32;
        if needed == 0 {
            return Ok(0);
        }
        let mut pool = KVec::new();
        let result = alloc(needed, &mut pool).and_then(|()| {
            if pool.len() < needed as usize {
                return Err(ENOSPC);
            }
            for i in 0..self.nodes.len() {
                if marked[i] {
                    self.make_dirty(i, &mut pool);
                }
            }
            Ok(needed)
        });
        if !pool.is_empty() {
            release(&pool);
        }
        result
    }

    /// Nodes whose copies `select` selects (current locations).
    pub(crate) fn count_nodes(&self, select: impl Fn(&[NodePtr]) -> bool) -> u64 {
        self.nodes
            .iter()
            .filter(|n| select(&n.at.ptrs[..n.at.nr_ptrs as usize]))
            .count() as u64
    }

    /// Copies of nodes that `select` selects (current locations).
    pub(crate) fn count_copies(&self, select: impl Fn(NodePtr) -> bool) -> u64 {
        let mut n = 0;
        self.for_each_bucket(|p| n += select(p) as u64);
        n
    }

    /// Writes every changed node to all of its copies; a node needs at least `required` good
    /// copies. Returns the root to put in the superblock.
    ///
    /// Levels are written from the leaves up, each level's nodes to all of their copies in one
    /// batch waited for once. A copy whose write failed is dropped from its node before the
    /// parent (or the root in the superblock) is encoded, and its bucket goes to `dropped`: no
    /// pointer is ever written to a copy that does not hold the node (its bucket still holds
    /// whatever it held, which a later mount could otherwise take for the node).
    pub(crate) fn write_dirty(
        &mut self,
        io: &impl NodeIo,
        required: u32,
        mut dropped: impl FnMut(NodePtr),
    ) -> Result<BtreeRoot> {
        let seq = self.seq + 1;
        let uuid = io.uuid();
        let failed = |p: &NodePtr, e: Error| {
            pr_err!(
                "{}: btree node write to member {} bucket {} failed ({})\n",
                crate::shared::superblock::UuidFmt(&uuid),
                p.member,
                p.bucket,
                e.to_errno()
            )
        };
        let mut children: KVec<Child> = KVec::new();
        let mut level_nodes: KVec<usize> = KVec::new();
        for level in 0..=self.nodes[self.root].level {
            level_nodes.clear();
            for (i, n) in self.nodes.iter().enumerate() {
                if n.dirty && n.level == level {
                    level_nodes.push(i, GFP_KERNEL)?;
                }
            }
            if level_nodes.is_empty() {
                continue;
            }
            // Every node of the level is encoded into its own block of one buffer.
            let mut bufs = IoBuf::new(level_nodes.len() * BLOCK_SIZE)?;
            for (k, &i) in level_nodes.iter().enumerate() {
                let n = &self.nodes[i];
                let buf = &mut bufs[k * BLOCK_SIZE..(k + 1) * BLOCK_SIZE];
                if n.level == 0 {
                    // The records were checked when decoded or encoded; a leaf the decoder
                    // would refuse is never written.
                    if !encode_leaf(&uuid, seq, n.offs.len(), &n.recs, buf) {
                        pr_err!(
                            "{}: btree leaf of {} record(s), {} bytes, cannot be encoded\n",
                            crate::shared::superblock::UuidFmt(&uuid),
                            n.offs.len(),
                            n.recs.len()
                        );
                        return Err(EIO);
                    }
                } else {
                    children.clear();
                    for c in n.children.iter() {
                        let at = self.nodes[c.node].at;
                        children.push(
                            Child {
                                kind: c.key.kind,
                                ino: c.key.ino,
                                off: c.key.off,
                                nr_ptrs: at.nr_ptrs,
                                ptrs: at.ptrs,
                            },
                            GFP_KERNEL,
                        )?;
                    }
                    if !encode_interior(&uuid, seq, n.level, &children, buf) {
                        pr_err!(
                            "{}: level {} btree node of {} children cannot be encoded\n",
                            crate::shared::superblock::UuidFmt(&uuid),
                            n.level,
                            children.len()
                        );
                        return Err(EIO);
                    }
                }
            }
            let copies = level_nodes
                .iter()
                .map(|&i| self.nodes[i].at.nr_ptrs as usize)
                .sum();
            let mut batch = IoBatch::with_capacity(copies)?;
            // Each copy's ticket, in node order (`None`: not submitted, already reported).
            let mut tickets: KVec<Option<IoTicket>> = KVec::with_capacity(copies, GFP_KERNEL)?;
            for (k, &i) in level_nodes.iter().enumerate() {
                let n = &self.nodes[i];
                let buf = bufs.slice(k * BLOCK_SIZE, BLOCK_SIZE).ok_or(EINVAL)?;
                for p in &n.at.ptrs[..n.at.nr_ptrs as usize] {
                    // Never a node into a metadata area or past the device (`node_target`
                    // checks).
                    let t = io
                        .node_target(*p)
                        .and_then(|(dev, off)| batch.write(dev, off, buf, false));
                    tickets.push(t.inspect_err(|e| failed(p, *e)).ok(), GFP_KERNEL)?;
                }
            }
            batch.run()?;
            let mut t = tickets.iter();
            for &i in level_nodes.iter() {
                let at = self.nodes[i].at;
                let mut kept = NodeAlloc::default();
                for p in &at.ptrs[..at.nr_ptrs as usize] {
                    let written = match t.next() {
                        Some(Some(ticket)) => batch.status(*ticket).inspect_err(|e| failed(p, *e)),
                        _ => Err(EIO),
                    };
                    if written.is_ok() {
                        push_copy(&mut kept, *p);
                    } else {
                        dropped(*p);
                    }
                }
                if kept.nr_ptrs < required.min(at.nr_ptrs) || kept.nr_ptrs == 0 {
                    return Err(EIO);
                }
                self.nodes[i].at = kept;
                self.nodes[i].seq = seq;
            }
        }
        let root = &self.nodes[self.root];
        let mut r = BtreeRoot {
            level: root.level,
            nr_ptrs: root.at.nr_ptrs as u8,
            node_seq: seq,
            ..Default::default()
        };
        r.ptrs = root.at.ptrs;
        Ok(r)
    }

    /// After the superblock points at the new root: the old locations of rewritten nodes are
    /// no longer needed; `free(ptr)` gets each of them, and the tree is clean.
    pub(crate) fn committed(&mut self, root: &BtreeRoot, mut free: impl FnMut(NodePtr)) {
        self.seq = root.node_seq;
        for old in self.pruned.iter() {
            for p in &old.ptrs[..old.nr_ptrs as usize] {
                free(*p);
            }
        }
        self.pruned.clear();
        for n in self.nodes.iter_mut() {
            if let Some(old) = n.old.take() {
                for p in &old.ptrs[..old.nr_ptrs as usize] {
                    free(*p);
                }
            }
            n.dirty = false;
        }
    }

    /// Calls `visit(level, seq, copies)` for every node with fewer than `replicas` copies
    /// (a degraded node: see `Documentation/on-disk-format.md`), and returns how many.
    pub(crate) fn degraded(
        &self,
        replicas: u32,
        mut visit: impl FnMut(u8, u64, &NodeAlloc),
    ) -> u64 {
        let mut n = 0;
        for node in self.nodes.iter().filter(|x| x.at.nr_ptrs < replicas) {
            visit(node.level, node.seq, &node.at);
            n += 1;
        }
        n
    }

    /// Re-replication: every node with fewer than `replicas` copies, and every node on its
    /// path to the root, moves (copy-on-write, as an insert moves a path) to new locations that
    /// `alloc(n)` returns, all at once before anything changes; the next commit writes them
    /// and frees the old copies. Returns the nodes moved (0: nothing degraded, `alloc` not
    /// called). Locations not used (on an error) go back through `release`.
    pub(crate) fn rereplicate(
        &mut self,
        replicas: u32,
        alloc: impl FnOnce(u32, &mut KVec<NodeAlloc>) -> Result,
        release: impl FnOnce(&[NodeAlloc]),
    ) -> Result<u32> {
        // Which nodes move: a level at a time from the leaves up, a node moves if it is
        // degraded or one of its children moves (children are one level down, decided before).
        let mut moves: KVVec<bool> = KVVec::from_elem(false, self.nodes.len(), GFP_KERNEL)?;
        for level in 0..=self.nodes[self.root].level {
            for (i, n) in self.nodes.iter().enumerate() {
                if n.level != level || n.dirty {
                    continue;
                }
                let child_moves = n.children.iter().any(|c| moves.get(c.node) == Some(&true));
                moves[i] = n.at.nr_ptrs < replicas || child_moves;
            }
        }
        let needed = moves.iter().filter(|&&m| m).count() as u32;
        if needed == 0 {
            return Ok(0);
        }
        let mut pool = KVec::new();
        let result = (|| {
            alloc(needed, &mut pool)?;
            if pool.len() < needed as usize {
                return Err(ENOSPC);
            }
            for (i, _) in moves.iter().enumerate().filter(|(_, &m)| m) {
                self.make_dirty(i, &mut pool);
            }
            Ok(needed)
        })();
        if !pool.is_empty() {
            release(&pool);
        }
        result
    }

    /// Figures for `internal/btree_stats`.
    pub(crate) fn stats(&self) -> BtreeStats {
        let mut s = BtreeStats {
            nodes: self.nodes.len() as u64,
            depth: self.nodes[self.root].level as u64 + 1,
            ..Default::default()
        };
        for n in self.nodes.iter().filter(|n| n.level == 0) {
            let mut at = 0;
            while at < n.recs.len() {
                let (p, len) = rec_at(&n.recs, at);
                if p.kind == Kind::Map as u8 {
                    s.keys += 1;
                    let val = &n.recs[at + KEY_HEADER..at + KEY_HEADER + len];
                    s.digest = s.digest.wrapping_add(key_digest(p, val));
                } else {
                    s.namespace_keys += 1;
                }
                at += bkey::record_size(len);
            }
        }
        s
    }
}
