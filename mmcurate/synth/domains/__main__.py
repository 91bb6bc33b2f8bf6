from mmcurate.synth.domains.generate import main

main()
