//! Distributed datastores' saved state: save, restore, and the on-disk bitmaps.

use super::*;

/// The blocks of `img` that hold data: within the file system's data ranges, the blocks
/// that are not all zeros (the other leg starts as known zeros, so only these need copying).
pub(super) fn nonzero_blocks(img: &ImageFile) -> Result<Bitmap, EngineError> {
    let blocks = img.block_count();
    let mut bits = Bitmap::new(blocks);
    let mut buf = vec![0u8; COMPARE_CHUNK_BLOCKS as usize * BLOCK_SIZE];
    for r in img.data_ranges() {
        let mut b = r.start / BLOCK_SIZE as u64;
        let end = r.end.div_ceil(BLOCK_SIZE as u64).min(blocks);
        while b < end {
            let n = COMPARE_CHUNK_BLOCKS.min(end - b);
            let len = n as usize * BLOCK_SIZE;
            img.read_at(b * BLOCK_SIZE as u64, &mut buf[..len])
                .map_err(io_err_at(img.path()))?;
            for (k, chunk) in buf[..len].chunks_exact(BLOCK_SIZE).enumerate() {
                if chunk.iter().any(|&x| x != 0) {
                    bits.set(b + k as u64);
                }
            }
            b += n;
        }
    }
    Ok(bits)
}

/// Writes one byte of a bitmap file in place (creating the file if needed).
pub(super) fn persist_bitmap_byte(
    path: &std::path::Path,
    index: u64,
    byte: u8,
) -> Result<(), EngineError> {
    use std::os::unix::fs::FileExt;
    alive()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err_at(dir))?;
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err_at(path))?;
    f.write_all_at(&[byte], index).map_err(io_err_at(path))
}

impl Engine {
    /// Saved with the engine state.
    pub(in crate::engine) fn stretch_saved(&self) -> StretchSaved {
        let st = &self.stretch;
        StretchSaved {
            partitioned: st.partitioned.iter().cloned().collect(),
            faulted_arrays: st.faulted_arrays.iter().cloned().collect(),
            link_taken_down: st.link_taken_down,
            datastores: st
                .dists
                .iter()
                .map(|(k, d)| (k.clone(), d.saved.clone()))
                .collect(),
        }
    }

    /// Restores the saved state right after the engine is built (before migrations are
    /// recovered and replication starts); may queue events.
    pub(in crate::engine) fn restore_stretch(
        &mut self,
        saved: StretchSaved,
    ) -> Result<(), EngineError> {
        self.stretch.partitioned = saved.partitioned.iter().cloned().collect();
        self.stretch.faulted_arrays = saved.faulted_arrays.iter().cloned().collect();
        self.stretch.link_taken_down = saved.link_taken_down;
        let created: Vec<String> = self
            .topology()
            .datastores
            .iter()
            .filter(|d| d.distributed.as_ref().is_some_and(|x| x.created))
            .map(|d| d.id.clone())
            .collect();
        for ds in created {
            match saved.datastores.get(&ds) {
                Some(s) => {
                    let mut rt = DistRt {
                        saved: s.clone(),
                        bits: BTreeMap::new(),
                        remote: BTreeMap::new(),
                        rebuilding: false,
                        gen_: 0,
                    };
                    for inst in &s.instances {
                        let blocks = self.st_blocks_of_instance(&ds, inst).unwrap_or(0);
                        let path = self.st_bitmap_path(&ds, inst);
                        let bytes = match std::fs::read(&path) {
                            Ok(b) => b,
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                            Err(e) => return Err(io_err_at(&path)(e)),
                        };
                        rt.bits
                            .insert(inst.clone(), Bitmap::from_bytes(&bytes, blocks));
                        if s.remote_present {
                            let dir = self.st_remote_leg_dir(&ds)?.join(inst);
                            if dir.join("disk0.img").exists() {
                                let img =
                                    ImageFile::open(&dir.join("disk0.img"))?.without_readahead();
                                rt.remote.insert(inst.clone(), img);
                            }
                        }
                    }
                    let serving_remote = rt.saved.serving_remote;
                    rt.saved.serving_remote = false;
                    let polarizing = rt.saved.polarizing.is_some();
                    self.stretch.dists.insert(ds.clone(), rt);
                    if serving_remote {
                        self.st_swap_serving(&ds, true)?;
                    }
                    if polarizing {
                        // Still waiting for the witness (`guest_held` keeps the guests the
                        // reopen starts held): the event decides when it is time.
                        self.st_schedule(&ds, self.now, 0);
                    }
                }
                None => {
                    // Created with the workspace: both legs, in sync (zeros on both).
                    self.stretch.dists.insert(ds.clone(), DistRt::default());
                    std::fs::create_dir_all(self.st_remote_leg_dir(&ds)?)
                        .map_err(io_err(format!("creating the second leg of {ds}")))?;
                    self.stretch
                        .dists
                        .get_mut(&ds)
                        .expect("inserted")
                        .saved
                        .remote_present = true;
                }
            }
            // Instances that came or went while the engine was closed (a crash between a
            // migration's switch and the hook).
            self.stretch_reconcile(&ds)?;
            let (total, done) = self
                .stretch
                .dists
                .get(&ds)
                .map_or((0, 0), |r| (r.saved.rebuild_total, r.saved.rebuilt));
            self.st_kick_rebuild(&ds);
            // A rebuild cut short by a close carries on with its counts.
            if let Some(rt) = self.stretch.dists.get_mut(&ds)
                && rt.rebuilding
                && done > 0
            {
                rt.saved.rebuild_total = total;
                rt.saved.rebuilt = done;
            }
        }
        Ok(())
    }
}
